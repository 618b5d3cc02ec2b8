"""The install manifests, read as files (no cluster, no kustomize): generated
copies fresh, RBAC without wildcards or Secrets, a Deployment that meets Pod
Security "restricted" and runs flags `modeldeploy run` accepts, an image
reference that `make image` builds, and the GitOps and monitoring pieces
pointing at names that exist. tests/e2e/test_install.py builds and applies
them on the real control plane."""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from modeldeploy.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
BASE = MANIFESTS / "base"


def load_docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def render_module():
    spec = importlib.util.spec_from_file_location("render_manifests", REPO / "hack" / "render_manifests.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def deployment() -> dict:
    return load_docs(BASE / "deployment.yaml")[0]


@pytest.fixture(scope="module")
def container(deployment) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def all_rules() -> dict[str, list[dict]]:
    """Every RBAC rule shipped anywhere under manifests/, by where it is:
    roles in YAML files and rules that components/overlays patch in."""
    found: dict[str, list[dict]] = {}
    for path in sorted(MANIFESTS.rglob("*.yaml")):
        for doc in load_docs(path):
            if doc.get("kind") in ("ClusterRole", "Role"):
                found[f"{path.relative_to(REPO)}:{doc['metadata']['name']}"] = doc.get("rules", [])
            for patch in doc.get("patches", []) if doc.get("kind") in ("Kustomization", "Component") else []:
                ops = yaml.safe_load(patch.get("patch", "")) or []
                for op in ops if isinstance(ops, list) else []:
                    if op.get("path") == "/rules/-":
                        found.setdefault(f"{path.relative_to(REPO)}:patch", []).append(op["value"])
    return found


# -- generated files ------------------------------------------------------------

def test_generated_files_are_fresh():
    render = render_module()
    for path, text in render.rendered().items():
        assert path.read_text() == text, f"stale {path.relative_to(REPO)}: run `make manifests`"


def test_base_crd_is_the_generated_crd():
    assert (BASE / "crd" / "modeldeployment.yaml").read_text() == (REPO / "crds" / "modeldeployment.yaml").read_text()


def test_argocd_patch_embeds_the_health_script():
    (cm,) = load_docs(MANIFESTS / "argocd" / "argocd-cm-patch.yaml")
    assert (cm["kind"], cm["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    key = "resource.customizations.health.modeldeploy.io_ModelDeployment"
    assert cm["data"][key] == (MANIFESTS / "argocd" / "health.lua").read_text()


# -- RBAC -------------------------------------------------------------------------

def test_rbac_has_no_wildcards_no_secrets_and_no_escalation():
    rules = all_rules()
    assert len(rules) >= 4, rules.keys()  # base, scanning, and the two components' patches
    for where, role_rules in rules.items():
        for rule in role_rules:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), f"{where}: wildcard in {field}: {rule}"
            assert not rule.get("resourceNames") or "*" not in rule["resourceNames"]
            assert not rule.get("nonResourceURLs"), f"{where}: {rule}"
            assert not {"secrets", "configmaps", "serviceaccounts/token"} & set(rule["resources"]), f"{where}: {rule}"
            assert not {"escalate", "bind", "impersonate", "deletecollection"} & set(rule["verbs"]), \
                f"{where}: {rule}"


def test_every_kind_in_the_registry_is_granted_exactly_where_it_is_written():
    """The RBAC follows the one registry of written kinds (reconcile.kinds):
    every child kind is watched with the base role; the builders' kinds are
    written with it; each route kind is written only with its provider's
    component. A kind added to a builder or provider without RBAC fails here."""
    from modeldeploy.builders import BUILT_KINDS
    from modeldeploy.reconcile.kinds import CHILD_RESOURCES
    from modeldeploy.traffic.registry import all_route_kinds

    base = {(g, r): set(rule["verbs"]) for rule in load_docs(BASE / "rbac.yaml")[0]["rules"]
            for g in rule["apiGroups"] for r in rule["resources"]}
    writes = {"create", "patch", "delete"}
    for kind in CHILD_RESOURCES:
        assert {"list", "watch"} <= base.get((kind.group, kind.plural), set()), kind
    for kind in BUILT_KINDS:
        assert writes <= base[(kind.group, kind.plural)], kind
    components = {rule_key: rules for rule_key, rules in all_rules().items() if "components/" in rule_key}
    for kind in all_route_kinds():
        assert not writes & base[(kind.group, kind.plural)], f"{kind.kind} written without its provider"
        granted = [rule for rules in components.values() for rule in rules
                   if kind.group in rule["apiGroups"] and kind.plural in rule["resources"]]
        assert granted and writes <= set(granted[0]["verbs"]), kind


def test_route_writes_come_only_with_their_provider():
    base = {(g, r): set(rule["verbs"]) for rule in load_docs(BASE / "rbac.yaml")[0]["rules"]
            for g in rule["apiGroups"] for r in rule["resources"]}
    assert base[("gateway.networking.k8s.io", "httproutes")] == {"list", "watch"}
    assert base[("networking.istio.io", "virtualservices")] == {"list", "watch"}
    for component, (group, resource) in {"gateway-api": ("gateway.networking.k8s.io", "httproutes"),
                                         "istio": ("networking.istio.io", "virtualservices")}.items():
        added = all_rules()[f"manifests/components/{component}/kustomization.yaml:patch"]
        assert added == [{"apiGroups": [group], "resources": [resource], "verbs": ["create", "patch", "delete"]}]


# -- the Deployment --------------------------------------------------------------

def test_deployment_meets_pod_security_restricted(deployment, container):
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC")
    assert all("emptyDir" in v for v in pod.get("volumes", [])), "restricted allows no hostPath"


def test_deployment_is_one_replica_recreated_with_probes_and_resources(deployment, container):
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert (get["path"], ports[get["port"]]) == ("/healthz", 8081)
    assert ports["http-metrics"] == 8080


def test_deployment_args_are_accepted_by_modeldeploy_run(container):
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    assert args.liveness == "http://0.0.0.0:8081/healthz"
    assert args.metrics_port == 8080
    assert args.namespace == [] and not args.install_crd and not args.peering


def test_the_pod_names_itself_to_kopf_so_a_uid_without_a_passwd_entry_can_start(container):
    """Found on the real node (tests/realnode/test_operator_pod.py): without
    POD_ID kopf names the operator after getpass.getuser(), which fails for
    UID 65532 (no passwd entry in the image), and the pod exited at start."""
    env = {var["name"]: var for var in container.get("env", [])}
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_namespaced_overlay_runs_with_namespace_and_binds_per_namespace():
    (kustomization,) = load_docs(MANIFESTS / "overlays" / "namespaced" / "kustomization.yaml")
    added = [yaml.safe_load(p["patch"]) for p in kustomization["patches"] if p["target"]["kind"] == "Deployment"]
    assert added == [[{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--namespace=models"}]]
    (binding,) = load_docs(MANIFESTS / "overlays" / "namespaced" / "rolebinding.yaml")
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "models"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "modeldeploy-operator"}


def test_metrics_service_targets_the_metrics_port(deployment):
    (service,) = load_docs(BASE / "service.yaml")
    (port,) = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (8080, "http-metrics")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


# -- the image ---------------------------------------------------------------------

def dockerfile_stages() -> list[list[str]]:
    lines, stages = [], []
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        (stages[-1] if stages else lines).append(line)
    return stages


def test_dockerfile_final_stage_is_pinned_slim_non_root_and_without_build_tools():
    text = (REPO / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: build, then a runtime stage"
    final = stages[-1]
    assert final[0] == "FROM ${PYTHON_IMAGE}"
    user = [line.split(None, 1)[1] for line in final if line.upper().startswith("USER ")][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: numeric and non-root, for runAsNonRoot"
    run = " ".join(line for line in final if line.upper().startswith("RUN "))
    assert not re.search(r"apt-get install|apk add|gcc|build-essential|pip install", run), run
    assert "PYTHONDONTWRITEBYTECODE=1" in " ".join(final), "a read-only root cannot take .pyc files"


def test_image_in_manifests_is_what_make_image_builds(container):
    out = subprocess.run(["make", "-n", "--no-print-directory", "image"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    built = re.search(r"docker build -t (\S+) \.", out).group(1)
    assert container["image"] == built


def test_image_default_command_matches_the_deployment(container):
    final = dockerfile_stages()[-1]
    entry = json.loads(next(line for line in final if line.startswith("ENTRYPOINT"))[len("ENTRYPOINT"):])
    cmd = json.loads(next(line for line in final if line.startswith("CMD"))[len("CMD"):])
    assert entry == ["modeldeploy"] and cmd == container["args"]


# -- GitOps and monitoring ----------------------------------------------------------

def test_flux_example_health_checks_the_modeldeployment_kind():
    crd = load_docs(REPO / "crds" / "modeldeployment.yaml")[0]
    api_version = f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
    docs = load_docs(MANIFESTS / "flux" / "modeldeployments.yaml")
    kustomizations = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Kustomization"}
    assert all(d["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1" for d in kustomizations.values())
    checks = kustomizations["models"]["spec"]["healthChecks"]
    assert checks and all((c["apiVersion"], c["kind"]) == (api_version, crd["spec"]["names"]["kind"])
                          for c in checks)
    assert [d["name"] for d in kustomizations["models"]["spec"]["dependsOn"]] == ["modeldeploy-operator"]
    operator_path = kustomizations["modeldeploy-operator"]["spec"]["path"]
    assert (REPO / operator_path / "kustomization.yaml").is_file(), operator_path
    sources = {d["metadata"]["name"] for d in docs if d["kind"] == "GitRepository"}
    assert {k["spec"]["sourceRef"]["name"] for k in kustomizations.values()} <= sources


def test_dashboard_queries_only_metrics_the_operator_exports():
    exported = set(re.findall(r'"(modeldeploy_[a-z_]+)"', (REPO / "operator" / "modeldeploy" / "metrics.py").read_text()))
    dashboard = json.loads((MANIFESTS / "monitoring" / "dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if isinstance(v.get("query"), dict)]
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"modeldeploy_[a-z_]+", e)}
    assert used and used <= exported, used - exported
    for needed in ("modeldeploy_canary_weight", "modeldeploy_rollout_step", "modeldeploy_rollouts_total",
                   "modeldeploy_analysis_verdicts_total", "modeldeploy_check_outcomes_total",
                   "modeldeploy_check_running"):
        assert needed in used


def test_servicemonitor_scrapes_the_metrics_service():
    (monitor,) = load_docs(MANIFESTS / "monitoring" / "servicemonitor.yaml")
    (service,) = load_docs(BASE / "service.yaml")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_the_models_dashboard_reads_the_labels_the_pod_monitor_writes():
    """manifests/monitoring/models-dashboard.json: per model and version, from
    the series the PodMonitor scrapes off the model pods (their names are
    checked against MLServer's own on the real node, tests/realnode/test_serving.py)."""
    (monitor,) = load_docs(MANIFESTS / "monitoring" / "podmonitor-models.yaml")
    written = {r["targetLabel"] for e in monitor["spec"]["podMetricsEndpoints"] for r in e["relabelings"]}
    dashboard = json.loads((MANIFESTS / "monitoring" / "models-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    model_exprs = [e for e in exprs if "modeldeploy_" not in e]
    assert model_exprs
    for expr in model_exprs:
        grouped = {label.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for label in group.split(",")}
        selected = set(re.findall(r"([a-z_]+)=~", expr))
        assert (grouped | selected) - {"le"} <= written, (expr, written)
    kustomization = load_docs(MANIFESTS / "monitoring" / "kustomization.yaml")[0]
    assert "podmonitor-models.yaml" in kustomization["resources"]
    assert any("models-dashboard.json" in f for g in kustomization["configMapGenerator"] for f in g["files"])


def model_metric_families() -> set[str]:
    """The runtime metric families the models dashboard queries."""
    dashboard = json.loads((MANIFESTS / "monitoring" / "models-dashboard.json").read_text())
    names = {m for p in dashboard["panels"] for t in p.get("targets", [])
             for m in re.findall(r"\b([a-z_]+)\{", t["expr"]) if not m.startswith("modeldeploy_")}
    return {re.sub(r"_(total|sum|count|bucket)$", "", n) for n in names}


# -- the sharded variant (overlays/sharded) ------------------------------------------

SHARDED = MANIFESTS / "overlays" / "sharded"


def test_sharded_statefulset_runs_one_shard_per_ordinal_with_n_equal_to_replicas(deployment):
    (sts,) = load_docs(SHARDED / "statefulset.yaml")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    env = {var["name"]: var for var in container["env"]}
    assert env["SHARD_INDEX"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
    assert env["POD_ID"] == {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    replicas = sts["spec"]["replicas"]
    shards = []
    for ordinal in range(replicas):
        # As the kubelet expands $(SHARD_INDEX) in the pod of that ordinal.
        args = [a.replace("$(SHARD_INDEX)", str(ordinal)) for a in container["args"]]
        parsed = build_parser().parse_args(args)
        assert parsed.command == "run" and parsed.metrics_port == 8080
        shards.append(parsed.shard)
    assert shards == [f"{i}/{replicas}" for i in range(replicas)]
    # Otherwise the base's pod: the same security, probes, resources and image.
    base_pod = deployment["spec"]["template"]["spec"]
    pod = sts["spec"]["template"]["spec"]
    assert {k: v for k, v in pod.items() if k != "containers"} == \
        {k: v for k, v in base_pod.items() if k != "containers"}
    (base_container,) = base_pod["containers"]
    assert {k: v for k, v in container.items() if k not in ("args", "env")} == \
        {k: v for k, v in base_container.items() if k not in ("args", "env")}
    assert sts["spec"]["selector"] == deployment["spec"]["selector"]


def test_sharded_overlay_replaces_the_deployment():
    (kustomization,) = load_docs(SHARDED / "kustomization.yaml")
    assert "statefulset.yaml" in kustomization["resources"]
    (delete,) = [yaml.safe_load(p["patch"]) for p in kustomization["patches"] if p["target"]["kind"] == "Deployment"]
    assert delete["$patch"] == "delete" and delete["metadata"]["name"] == "modeldeploy-operator"
