"""Issue 14's scheduling controls on the real control plane: the fields reach
the pods as the API server and its admission plugins take them (a
PriorityClass and a RuntimeClass must exist for their pods to be created),
and by default each role's replicas are spread across nodes."""
from __future__ import annotations

from support.models import apply_md, get_md, is_true, model_deployment, status_view
from support.waiting import wait_until


def pods_of(cluster, namespace, name):
    return cluster.get_json("-n", namespace, "pods", "-l", f"modeldeploy.io/name={name}")["items"]


def test_scheduling_fields_reach_the_pods_and_the_default_spread_is_there(cluster, namespace, operator):
    suffix = namespace[-20:]
    cluster.kubectl("apply", "-f", "-", input=f"""
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {{name: models-{suffix}}}
value: 100000
---
apiVersion: node.k8s.io/v1
kind: RuntimeClass
metadata: {{name: gpu-{suffix}}}
handler: runc
""")
    doc = model_deployment("placed", replicas=2)
    doc["spec"].update(
        affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 1, "preference": {"matchExpressions": [{"key": "type", "operator": "In",
                                                                "values": ["kwok"]}]}}]}},
        priorityClassName=f"models-{suffix}", runtimeClassName=f"gpu-{suffix}",
        imagePullSecrets=[{"name": "registry"}])
    apply_md(cluster, namespace, doc)
    apply_md(cluster, namespace, model_deployment("spread", replicas=2))
    for name in ("placed", "spread"):
        wait_until(lambda: is_true(get_md(cluster, namespace, name), "Ready"), timeout=60, what=f"{name} Ready",
                   describe=lambda: status_view(get_md(cluster, namespace, name)))
    for pod in pods_of(cluster, namespace, "placed"):
        spec = pod["spec"]
        assert spec["priorityClassName"] == f"models-{suffix}" and spec["priority"] == 100000
        assert spec["runtimeClassName"] == f"gpu-{suffix}"
        assert spec["imagePullSecrets"] == [{"name": "registry"}]
        assert spec["affinity"] == doc["spec"]["affinity"]
        assert [c["topologyKey"] for c in spec["topologySpreadConstraints"]] == ["kubernetes.io/hostname"]
    for pod in pods_of(cluster, namespace, "spread"):
        [spread] = pod["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["whenUnsatisfiable"] == "ScheduleAnyway"
        assert spread["labelSelector"]["matchLabels"] == {"modeldeploy.io/name": "spread",
                                                          "modeldeploy.io/role": "stable"}
    # (The scheduler's own default spread would place them apart too: the
    # constraint above is what a cluster without that default relies on.)
    nodes = {pod["spec"]["nodeName"] for pod in pods_of(cluster, namespace, "spread")}
    assert len(nodes) == 2, f"two replicas on two nodes when there is room: {nodes}"


def test_a_pod_template_patch_reaches_the_pods_and_one_that_breaks_restricted_is_refused_in_the_status(
        cluster, namespace, operator):
    """The test namespaces enforce Pod Security restricted (as the README's
    install recommends): a patch that breaks it would have the ReplicaSet's
    pods refused, unseen; the operator refuses it first, in the status, and
    the pods that serve stay as they are."""
    doc = model_deployment("patched", replicas=1)
    doc["spec"]["podTemplatePatch"] = {
        "metadata": {"annotations": {"example.com/scrape": "true"}},
        "spec": {"containers": [{"name": "model-server", "env": [{"name": "OMP_NUM_THREADS", "value": "4"}]}]}}
    apply_md(cluster, namespace, doc)
    wait_until(lambda: is_true(get_md(cluster, namespace, "patched"), "Ready"), timeout=60, what="Ready",
               describe=lambda: status_view(get_md(cluster, namespace, "patched")))
    [pod] = pods_of(cluster, namespace, "patched")
    assert pod["metadata"]["annotations"]["example.com/scrape"] == "true"
    server = next(c for c in pod["spec"]["containers"] if c["name"] == "model-server")
    assert {"name": "OMP_NUM_THREADS", "value": "4"} in server["env"]

    broken = model_deployment("patched", replicas=1)
    broken["spec"]["podTemplatePatch"] = {"spec": {"hostNetwork": True}}
    apply_md(cluster, namespace, broken)
    stalled = wait_until(lambda: is_true(m := get_md(cluster, namespace, "patched"), "Stalled") and m, timeout=60,
                         what="the broken patch refused in the status",
                         describe=lambda: status_view(get_md(cluster, namespace, "patched")))
    assert "spec.podTemplatePatch breaks Pod Security restricted: hostNetwork: true" in stalled["status"]["message"]
    assert [p["metadata"]["name"] for p in pods_of(cluster, namespace, "patched")] == [pod["metadata"]["name"]]
    assert not cluster.apps.read_namespaced_deployment("patched-stable", namespace).spec.template.spec.host_network
