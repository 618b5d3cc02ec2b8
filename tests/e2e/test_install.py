"""Installing from manifests/ on the real control plane: every variant builds
with the kustomize inside kubectl and passes the API server's validation,
and the base, applied to a namespace that enforces Pod Security
"restricted", gets its operator pod running (kwok plays the kubelet; the
image is never pulled)."""
from __future__ import annotations

import copy
import uuid

import pytest
import yaml

from support.install import MANIFESTS, apply_docs, build, delete_docs, find, relocate
from support.operator import install_crd
from support.waiting import wait_until

VARIANTS = ["", "overlays/namespaced", "overlays/with-gateway-api", "overlays/with-istio", "overlays/sharded"]


@pytest.mark.e2e
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v or "manifests")
def test_variant_builds_and_the_api_server_accepts_it(cluster, variant, tmp_path):
    docs = build(cluster, MANIFESTS / variant)
    kinds = sorted(d["kind"] for d in docs)
    for kind in ("CustomResourceDefinition", "Namespace", "ServiceAccount", "ClusterRole", "Service"):
        assert kind in kinds, kinds
    # The sharded variant runs a StatefulSet instead of the Deployment.
    assert ("StatefulSet" if variant == "overlays/sharded" else "Deployment") in kinds, kinds
    # Server-side dry run: schemas, RBAC object validity and admission, nothing persisted.
    # Names are moved so the dry run does not meet objects of a real install.
    suffix = f"-{uuid.uuid4().hex[:6]}"
    moved = relocate([d for d in docs if d["kind"] not in ("CustomResourceDefinition", "RoleBinding")],
                     system_namespace=f"mddry{suffix}", suffix=suffix)
    namespaces = [d for d in moved if d["kind"] == "Namespace"]
    apply_docs(cluster, namespaces)  # a dry run cannot create objects inside a namespace it only pretends to create
    try:
        proc = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(moved), check=False)
        assert proc.returncode == 0, proc.stderr
    finally:
        delete_docs(cluster, namespaces)


@pytest.mark.e2e
def test_provider_overlays_add_only_their_route_verbs(cluster):
    base_rules = find(build(cluster, MANIFESTS), "ClusterRole", "modeldeploy-operator")["rules"]
    for variant, group, resource in (("with-gateway-api", "gateway.networking.k8s.io", "httproutes"),
                                     ("with-istio", "networking.istio.io", "virtualservices")):
        rules = find(build(cluster, MANIFESTS / "overlays" / variant), "ClusterRole", "modeldeploy-operator")["rules"]
        assert rules[:len(base_rules)] == base_rules
        assert rules[len(base_rules):] == [{"apiGroups": [group], "resources": [resource],
                                            "verbs": ["create", "patch", "delete"]}]


@pytest.mark.e2e
def test_namespaced_overlay_grants_nothing_cluster_wide_but_scanning(cluster):
    docs = build(cluster, MANIFESTS / "overlays" / "namespaced")
    cluster_bindings = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert [b["roleRef"]["name"] for b in cluster_bindings] == ["modeldeploy-operator-scanning"]
    scanning = find(docs, "ClusterRole", "modeldeploy-operator-scanning")["rules"]
    assert {(r["resources"][0], tuple(r["verbs"])) for r in scanning} == {
        ("namespaces", ("list", "watch")), ("customresourcedefinitions", ("list", "watch"))}
    container = find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--namespace=models" in container["args"]


@pytest.fixture
def base_in_own_namespace(cluster):
    """manifests/ as shipped, with its namespace (which carries the
    enforce=restricted label) and cluster-scoped names made unique."""
    suffix = f"-{uuid.uuid4().hex[:6]}"
    system_ns = f"mdpss{suffix}"
    docs = relocate([d for d in build(cluster, MANIFESTS) if d["kind"] != "CustomResourceDefinition"],
                    system_namespace=system_ns, suffix=suffix)
    install_crd(cluster)  # the same CRD (tests/unit/test_manifests.py checks the copy)
    yield system_ns, docs
    delete_docs(cluster, docs)


@pytest.mark.e2e
def test_base_deployment_runs_under_pod_security_restricted(cluster, base_in_own_namespace):
    system_ns, docs = base_in_own_namespace
    apply_docs(cluster, docs)
    labels = cluster.get_json("namespace", system_ns)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    def running():
        pods = cluster.core.list_namespaced_pod(system_ns, label_selector="app.kubernetes.io/name=modeldeploy-operator")
        return [p for p in pods.items if p.status.phase == "Running"]
    (pod,) = wait_until(running, timeout=60, what="the operator pod running under restricted",
                        describe=lambda: cluster.kubectl("-n", system_ns, "get", "deploy,rs,pods,events",
                                                         check=False).stdout)
    assert pod.spec.service_account_name == "modeldeploy-operator"
    assert pod.spec.containers[0].security_context.read_only_root_filesystem is True

    # The enforcement is real: the same pod without runAsNonRoot is refused.
    template = find(docs, "Deployment")["spec"]["template"]
    rogue = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rogue", "namespace": system_ns},
             "spec": copy.deepcopy(template["spec"])}
    del rogue["spec"]["securityContext"]["runAsNonRoot"]
    del rogue["spec"]["securityContext"]["runAsUser"]
    proc = cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(rogue), check=False)
    assert proc.returncode != 0 and 'violates PodSecurity "restricted' in proc.stderr, proc.stderr


@pytest.mark.e2e
def test_sharded_overlay_runs_one_pod_per_shard_each_told_its_ordinal(cluster):
    """overlays/sharded applied as shipped (namespace and cluster-scoped names
    moved): three operator pods under Pod Security "restricted", and each
    carries the apps.kubernetes.io/pod-index label its --shard=$(SHARD_INDEX)/3
    reads through the downward API, equal to the ordinal in its name."""
    suffix = f"-{uuid.uuid4().hex[:6]}"
    system_ns = f"mdshard{suffix}"
    docs = relocate([d for d in build(cluster, MANIFESTS / "overlays" / "sharded")
                     if d["kind"] != "CustomResourceDefinition"], system_namespace=system_ns, suffix=suffix)
    install_crd(cluster)
    try:
        apply_docs(cluster, docs)

        def running():
            pods = cluster.core.list_namespaced_pod(system_ns,
                                                    label_selector="app.kubernetes.io/name=modeldeploy-operator")
            up = [p for p in pods.items if p.status.phase == "Running"]
            return len(up) == 3 and up
        pods = wait_until(running, timeout=90, what="three operator shards running",
                          describe=lambda: cluster.kubectl("-n", system_ns, "get", "sts,pods,events",
                                                           check=False).stdout)
        indexes = {p.metadata.name: p.metadata.labels.get("apps.kubernetes.io/pod-index") for p in pods}
        assert indexes == {f"modeldeploy-operator-{i}": str(i) for i in range(3)}, indexes
        container = pods[0].spec.containers[0]
        assert "--shard=$(SHARD_INDEX)/3" in container.args
        env = {e.name: e for e in container.env}
        assert env["SHARD_INDEX"].value_from.field_ref.field_path == "metadata.labels['apps.kubernetes.io/pod-index']"
    finally:
        delete_docs(cluster, docs)
