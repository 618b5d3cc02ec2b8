"""The generated CRD: committed copy up to date, and acceptable to the API server
(structural schema rules, checked here without a cluster)."""

from pathlib import Path

import pytest
import yaml

from modeldeploy.api import parse_spec
from modeldeploy.api.formats import DNS1123_SUBDOMAIN_PATTERN
from modeldeploy.crd import render_crd

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "crds" / "modeldeployment.yaml"
REGENERATE = ".venv/bin/python -m modeldeploy.crd > crds/modeldeployment.yaml"


@pytest.fixture(scope="module")
def crd(known_formats):
    return yaml.safe_load(render_crd(known_formats))


@pytest.fixture(scope="module")
def root(crd):
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def walk(node, path="$"):
    """Yield (path, schema node) for every schema node below `node`."""
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_committed_crd_is_up_to_date(known_formats):
    assert COMMITTED.read_text() == render_crd(known_formats), f"stale CRD: run `{REGENERATE}`"


def test_schema_is_structural(root):
    for path, node in walk(root):
        assert "$ref" not in node and "$defs" not in node, path
        assert "title" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, path
            assert node.get("anyOf") == [{"type": "integer"}, {"type": "string"}], path
        else:
            assert "type" in node, f"{path} has no type"
            assert not {"anyOf", "oneOf", "allOf", "not"} & node.keys(), path
        if "default" in node:
            assert node["default"] is not None, path


def test_free_form_only_where_meant(root):
    free_form = [p for p, n in walk(root) if n.get("x-kubernetes-preserve-unknown-fields")]
    # status.stable.spec: the stable revision's pod-shaping spec, stored as written;
    # status.stable.runtime: the serving container it was rolled out with.
    # spec.affinity and spec.topologySpreadConstraints: the pod spec's own
    # types (issue 14), passed through as tolerations are; spec.podTemplatePatch
    # a patch of the pod template; spec.rollout.checks[].job.template: a JobSpec,
    # checked by the operator (api/rollout.py CheckJob). spec.autoscaling.metrics[]'s
    # members and their targets: HPA v2 metric sources, passed to the HPA;
    # a KEDA trigger's authenticationRef (api/autoscaling.py, issue 14).
    metric = "$.spec.autoscaling.metrics[]."
    assert free_form == ["$.spec.runtime.env[].valueFrom",
                         *(f"{metric}{m}{t}" for m in ("resource", "pods", "object", "external", "containerResource")
                           for t in ("", ".target")),
                         "$.spec.autoscaling.keda.triggers[].authenticationRef",
                         "$.spec.tolerations[]", "$.spec.affinity",
                         "$.spec.topologySpreadConstraints[]", "$.spec.podTemplatePatch",
                         "$.spec.rollout.checks[].job.template", "$.status.stable.spec",
                         "$.status.stable.runtime"]


def test_quantities_are_int_or_string(root):
    resources = root["properties"]["spec"]["properties"]["resources"]["properties"]
    for kind in ("requests", "limits"):
        assert resources[kind]["additionalProperties"]["x-kubernetes-int-or-string"] is True


def test_bounds_that_keep_cel_cost_low_are_present(root):
    # The API server estimates CEL cost from maxItems/maxLength; unbounded ones can be refused.
    spec = root["properties"]["spec"]["properties"]
    assert spec["rollout"]["properties"]["steps"]["maxItems"] == 20
    assert spec["model"]["properties"]["format"]["maxLength"] == 63
    assert spec["rollout"]["properties"]["analysis"]["properties"]["metrics"]["maxItems"] == 10
    for path, node in walk(root):
        if node.get("type") == "array":
            assert "maxItems" in node, f"{path} is an unbounded list"


def test_cross_field_rules_have_readable_messages(root, known_formats):
    rules = {p: n["x-kubernetes-validations"] for p, n in walk(root) if "x-kubernetes-validations" in n}
    assert set(rules) == {
        "$",
        "$.spec",
        "$.spec.autoscaling",
        "$.spec.autoscaling.metrics[]",
        "$.spec.model",
        "$.spec.model.cache",
        "$.spec.model.credentials",
        "$.spec.rollout",
        "$.spec.rollout.steps[]",
        "$.spec.rollout.analysis",
        "$.spec.rollout.analysis.metrics[]",
        "$.spec.rollout.capacity",
        "$.spec.traffic",
    }
    messages = [r["message"] for rs in rules.values() for r in rs]
    assert "set either spec.replicas or spec.autoscaling, not both" in messages
    assert "autoscaling.minReplicas must be <= autoscaling.maxReplicas" in messages
    assert "each rollout step sets exactly one of setWeight, setMirror or pause" in messages
    assert "spec.model.credentials: a pvc:// model is mounted, not downloaded, so it takes no credentials" in messages
    format_rule = next(r for r in rules["$.spec"] if "self.model.format in" in r["rule"])
    for fmt in known_formats:
        assert f"'{fmt}'" in format_rule["rule"]
    assert any("self.metadata.name.size() <= 45" == r["rule"] for r in rules["$"])


def test_uri_pattern_restricts_schemes(root):
    uri = root["properties"]["spec"]["properties"]["model"]["properties"]["uri"]
    assert uri["pattern"] == "^((s3|gs|https?|pvc|hf)://|models:/).+"


def test_credentials_secret_name_is_a_dns_subdomain(root):
    credentials = root["properties"]["spec"]["properties"]["model"]["properties"]["credentials"]
    assert credentials["required"] == ["secretName"]
    name = credentials["properties"]["secretName"]
    assert (name["pattern"], name["maxLength"]) == (DNS1123_SUBDOMAIN_PATTERN, 253)
    # The pattern's own error shows the regular expression; the rule says it in words.
    [rule] = credentials["x-kubernetes-validations"]
    assert DNS1123_SUBDOMAIN_PATTERN in rule["rule"] and rule["message"].startswith(
        "spec.model.credentials.secretName must name a Secret")


def test_crd_defaults_match_the_operator_defaults(root, minimal_spec, known_formats):
    """The API server and the operator must fill in the same values."""
    rollout = root["properties"]["spec"]["properties"]["rollout"]
    operator_view = parse_spec(minimal_spec, known_formats=known_formats).model_dump(mode="json", by_alias=True)
    assert rollout["default"] == {}
    assert rollout["properties"]["steps"]["default"] == [
        {k: v for k, v in step.items() if v is not None} for step in operator_view["rollout"]["steps"]
    ]
    assert rollout["properties"]["strategy"]["default"] == operator_view["rollout"]["strategy"]
    assert rollout["properties"]["progressDeadlineSeconds"]["default"] == 600
    traffic = root["properties"]["spec"]["properties"]["traffic"]
    assert traffic["properties"]["provider"]["default"] == operator_view["traffic"]["provider"]


def test_status_is_typed_and_not_defaulted(root):
    status = root["properties"]["status"]
    assert status["type"] == "object"
    assert {"phase", "conditions", "stable", "canary", "traffic", "rollout", "history", "url"} <= status["properties"].keys()
    assert status["properties"]["conditions"]["x-kubernetes-list-map-keys"] == ["type"]
    assert status["properties"]["history"]["maxItems"] == 10
    assert not [p for p, n in walk(status) if "default" in n]


def test_printer_columns_point_at_real_fields(crd, root):
    version = crd["spec"]["versions"][0]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Version", "Phase", "Ready", "Canary", "Check", "Age"]  # Check: -o wide (priority 1)
    for name, json_path in columns.items():
        if json_path.startswith(".metadata"):
            continue
        node = root
        for part in json_path.strip(".").split("."):
            node = node["properties"][part]
        assert "type" in node, name


def test_names_and_subresources(crd):
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "modeldeployments.modeldeploy.io"
    assert spec["names"]["shortNames"] == ["md"]
    assert spec["scope"] == "Namespaced"
    subresources = spec["versions"][0]["subresources"]
    assert subresources["status"] == {}
    # The HPA scales a ModelDeployment in capacity mode Replace: each path is in the schema.
    scale = subresources["scale"]
    root = spec["versions"][0]["schema"]["openAPIV3Schema"]
    for path, kind in ((scale["specReplicasPath"], "integer"), (scale["statusReplicasPath"], "integer"),
                       (scale["labelSelectorPath"], "string")):
        node = root
        for part in path.strip(".").split("."):
            node = node["properties"][part]
        assert node["type"] == kind, path
