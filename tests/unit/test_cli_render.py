"""`modeldeploy render FILE`: offline, the same manifests the operator's
builders produce, in a stable order, and one line per problem for a bad file."""
from pathlib import Path

import pytest
import yaml

from modeldeploy.api import parse_spec
from modeldeploy.builders import Owner, Role, build_deployment, shared_children
from modeldeploy.cli import main
from modeldeploy.cli.manifests import UID_PLACEHOLDER
from modeldeploy.runtimes import load_runtime_table
from modeldeploy.traffic import ALL_STABLE, provider_for

REPO = Path(__file__).resolve().parents[2]
GATEWAY = {"provider": "gatewayAPI",
           "gatewayAPI": {"parentRefs": [{"name": "public-gw", "namespace": "gateways"}],
                          "hostnames": ["fraud.example.com"]}}


def md(name="fraud", namespace=None, **spec):
    spec = {"model": {"uri": f"s3://models/{name}/v7", "version": "v7", "format": "sklearn"}, **spec}
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "metadata": metadata, "spec": spec}


def write(tmp_path, *docs, name="md.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs) if docs and not isinstance(docs[0], str) else "".join(docs))
    return str(path)


def render(capsys, *args) -> tuple[int, str, str]:
    code = main(["render", *args])
    out, err = capsys.readouterr()
    return code, out, err


def expected(doc, namespace):
    table = load_runtime_table()
    spec = parse_spec(doc["spec"], known_formats=table.known_formats, name=doc["metadata"]["name"])
    owner = Owner(name=doc["metadata"]["name"], namespace=namespace, uid=UID_PLACEHOLDER)
    # Composed from the builders directly: the plan's steady state must be exactly this.
    provider = provider_for(spec)
    return [build_deployment(owner, spec, table, role=Role.STABLE, replicas=spec.fixed_replicas),
            *shared_children(owner, spec, weighted=provider.weighted),
            *provider.build_routes(owner, spec, ALL_STABLE)]


def test_render_prints_what_the_builders_build_with_the_routes_at_100_0(tmp_path, capsys):
    doc = md(namespace="models", replicas=3, traffic=GATEWAY)
    code, out, err = render(capsys, write(tmp_path, doc))
    assert (code, err) == (0, "")
    rendered = list(yaml.safe_load_all(out))
    assert rendered == expected(doc, "models")
    assert [d["kind"] for d in rendered] == ["Deployment", "Service", "Service", "Service",
                                            "PodDisruptionBudget", "HTTPRoute"]
    weights = [ref["weight"] for ref in rendered[-1]["spec"]["rules"][0]["backendRefs"]]
    assert weights == [100, 0]


def test_render_says_the_owner_uid_is_a_placeholder(tmp_path, capsys):
    _, out, _ = render(capsys, write(tmp_path, md()))
    header = [line for line in out.splitlines() if line.startswith("#")]
    assert any("placeholder" in line and UID_PLACEHOLDER in line for line in header)
    owners = [d["metadata"]["ownerReferences"][0] for d in yaml.safe_load_all(out)]
    assert {(o["name"], o["uid"]) for o in owners} == {("fraud", UID_PLACEHOLDER)}


def test_render_is_deterministic_and_follows_the_autoscaling_spec(tmp_path, capsys):
    doc = md(autoscaling={"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70},
             resources={"requests": {"cpu": "1", "memory": "1Gi"}})
    path = write(tmp_path, doc)
    first, second = render(capsys, path)[1], render(capsys, path)[1]
    assert first == second
    rendered = list(yaml.safe_load_all(first))
    assert "replicas" not in rendered[0]["spec"]  # the HPA owns it
    assert [d["kind"] for d in rendered] == ["Deployment", "Service", "Service", "Service",
                                            "HorizontalPodAutoscaler", "PodDisruptionBudget"]


def test_render_namespace_from_the_file_then_the_flag_then_default(tmp_path, capsys):
    assert {d["metadata"]["namespace"] for d in yaml.safe_load_all(render(capsys, write(tmp_path, md()))[1])} \
        == {"default"}
    assert {d["metadata"]["namespace"] for d in
            yaml.safe_load_all(render(capsys, write(tmp_path, md()), "-n", "ml")[1])} == {"ml"}
    code, out, err = render(capsys, write(tmp_path, md(namespace="models")), "-n", "ml")
    assert code == 1 and out == ""
    assert err == "modeldeploy: " + str(tmp_path / "md.yaml") + \
        ": fraud: metadata.namespace is 'models' but --namespace says 'ml' (drop one)\n"


def test_render_skips_other_kinds_and_renders_every_model_deployment(tmp_path, capsys):
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "models"}}
    code, out, err = render(capsys, write(tmp_path, namespace, md("fraud"), md("churn")))
    assert code == 0
    names = [d["metadata"]["name"] for d in yaml.safe_load_all(out) if d["kind"] == "Deployment"]
    assert names == ["fraud-stable", "churn-stable"]
    assert "document 1: skipped Namespace" in err


def test_render_an_invalid_model_deployment_one_line_per_problem(tmp_path, capsys):
    doc = md("Bad_Name", replicas=2, autoscalling={})
    del doc["spec"]["model"]["version"]
    path = write(tmp_path, doc)
    code, out, err = render(capsys, path)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"modeldeploy: {path}: Bad_Name: metadata.name: must start with a letter and contain only lowercase "
        "letters, digits and '-' (got 'Bad_Name')",
        f"modeldeploy: {path}: Bad_Name: spec.model.version: required",
        f"modeldeploy: {path}: Bad_Name: spec.autoscalling: unknown field (check the spelling)",
    ]


@pytest.mark.parametrize("text, message", [
    ("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n",
     "no ModelDeployment in the file (found Service): expected kind: ModelDeployment, "
     "apiVersion: modeldeploy.io/v1alpha1"),
    ("model: [unclosed\n", "not valid YAML (line 2): expected ',' or ']', but got '<stream end>'"),
    ("- just\n- a list\n", "not a Kubernetes object (expected a mapping with apiVersion and kind)"),
    ("apiVersion: modeldeploy.io/v1\nkind: ModelDeployment\nmetadata: {name: x}\n",
     "apiVersion must be modeldeploy.io/v1alpha1 (got 'modeldeploy.io/v1')"),
    ("apiVersion: modeldeploy.io/v1alpha1\nkind: ModelDeployment\nspec: {}\n", "metadata.name: required"),
])
def test_render_a_file_that_is_not_a_model_deployment(tmp_path, capsys, text, message):
    path = write(tmp_path, text)
    code, out, err = render(capsys, path)
    assert (code, out, err) == (1, "", f"modeldeploy: {path}: {message}\n")


def test_render_a_missing_file_is_a_usage_error(tmp_path, capsys):
    code, out, err = render(capsys, str(tmp_path / "nope.yaml"))
    assert (code, out) == (2, "")
    assert err == f"modeldeploy: cannot read {tmp_path / 'nope.yaml'}: No such file or directory\n"


def test_render_reads_stdin_and_every_example(capsys, monkeypatch):
    import io
    for example in sorted((REPO / "examples").glob("*.yaml")):
        monkeypatch.setattr("sys.stdin", io.StringIO(example.read_text()))
        code, out, err = render(capsys, "-")
        assert code == 0, err
        assert list(yaml.safe_load_all(out))[0]["kind"] == "Deployment"
