"""Issue 9's defects that involve the API server, shown on the real control
plane (the pure regression tests are in tests/unit/test_plan.py and
tests/unit/test_rollout_defects.py)."""
from __future__ import annotations

from support.canary import GATEWAY, model_v, wait_phase
from support.models import apply_md, condition, edited, get_md, is_true, model_deployment, status_view, wait_ready
from support.sampling import ChangeRecorder
from support.waiting import wait_until


def exists(cluster, namespace, kind, name) -> bool:
    return cluster.kubectl("get", "-n", namespace, kind, name, check=False).returncode == 0


def test_defect3_replicas_handed_to_the_hpa_without_a_dip(cluster, namespace, operator):
    doc = model_deployment("handover", replicas=4)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "handover")

    def replicas():
        return cluster.apps.read_namespaced_deployment("handover-stable", namespace).spec.replicas

    autoscaled = edited(doc, autoscaling={"minReplicas": 2, "maxReplicas": 8})
    autoscaled["spec"].pop("replicas")
    with ChangeRecorder(replicas, period=0.05) as seen:
        apply_md(cluster, namespace, autoscaled)
        wait_until(lambda: exists(cluster, namespace, "hpa", "handover"), timeout=30, what="the HPA")
        wait_ready(cluster, namespace, "handover")
    assert seen.seen and min(seen.seen) == 4, f"the Deployment's replicas went through {seen.seen}"
    fields = cluster.get_json("-n", namespace, "deployment", "handover-stable", "--show-managed-fields")
    owners = [e["manager"] for e in fields["metadata"]["managedFields"]
              if "f:replicas" in (e.get("fieldsV1") or {}).get("f:spec", {})]
    assert "modeldeploy-operator" not in owners, f"replicas still ours: {owners}"


def test_defect5_a_colliding_name_stalls_the_later_model_deployment(cluster, namespace, operator):
    apply_md(cluster, namespace, model_deployment("x", replicas=1))
    first = wait_ready(cluster, namespace, "x")
    apply_md(cluster, namespace, model_deployment("x-canary", replicas=1))

    def conflict():
        md = get_md(cluster, namespace, "x-canary")
        cond = condition(md, "Stalled")
        return cond and cond["status"] == "True" and cond["reason"] == "NameConflict" and md
    stalled = wait_until(conflict, timeout=30, what="x-canary stalled with NameConflict",
                         describe=lambda: status_view(get_md(cluster, namespace, "x-canary")))
    assert "Service x-canary already exists and is controlled by ModelDeployment x" in stalled["status"]["message"]
    service = cluster.get_json("-n", namespace, "service", "x-canary")
    assert [r["uid"] for r in service["metadata"]["ownerReferences"]] == [first["metadata"]["uid"]]
    assert service["spec"]["selector"] == {"modeldeploy.io/name": "x", "modeldeploy.io/role": "canary"}
    assert is_true(get_md(cluster, namespace, "x"), "Ready")
    assert not exists(cluster, namespace, "deployment", "x-canary-stable")


def test_defect12_a_settled_model_whose_pod_starts_crash_looping_is_not_ready(cluster, namespace, operator):
    apply_md(cluster, namespace, model_deployment("settled", replicas=2))
    wait_ready(cluster, namespace, "settled")
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="modeldeploy.io/name=settled").items
    # kwok's crash-loop stage now restarts this pod's container every few
    # seconds; the pod's Ready condition stays True between the crashes.
    cluster.kubectl("label", "-n", namespace, "pod", pods[0].metadata.name,
                    "sim.modeldeploy.io/behavior=crashloop", "--overwrite")

    def not_ready():
        md = get_md(cluster, namespace, "settled")
        ready = condition(md, "Ready")
        return ready and ready["status"] == "False" and ready["reason"] == "PodsCrashLooping" and md
    md = wait_until(not_ready, timeout=30, what="Ready=False PodsCrashLooping",
                    describe=lambda: status_view(get_md(cluster, namespace, "settled")))
    assert pods[0].metadata.name in md["status"]["message"]
    assert md["status"]["phase"] == "Degraded"


def test_defect14_under_gateway_api_the_client_service_reaches_stable_pods_only(cluster, namespace, operator):
    doc = model_deployment("apex", replicas=2, traffic=GATEWAY, rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "apex")
    apply_md(cluster, namespace, model_v(doc, "v2"))
    wait_phase(cluster, namespace, "apex", "Paused")
    service = cluster.get_json("-n", namespace, "service", "apex")
    assert service["spec"]["selector"] == {"modeldeploy.io/name": "apex", "modeldeploy.io/role": "stable"}

    def endpoint_pods():
        slices = cluster.get_json("-n", namespace, "endpointslices", "-l", "kubernetes.io/service-name=apex")
        return sorted(e["targetRef"]["name"] for s in slices["items"] for e in s.get("endpoints") or ())
    stable = sorted(p.metadata.name for p in cluster.core.list_namespaced_pod(
        namespace, label_selector="modeldeploy.io/name=apex,modeldeploy.io/role=stable").items)
    wait_until(lambda: endpoint_pods() == stable, timeout=30, what="the client Service's endpoints are stable pods",
               describe=endpoint_pods)


def test_a_field_removed_from_the_spec_is_removed_from_the_route(cluster, namespace, operator):
    doc = model_deployment("hosts", replicas=1, traffic=GATEWAY)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "hosts")
    assert cluster.get_json("-n", namespace, "httproute", "hosts")["spec"]["hostnames"] == ["fraud.example.com"]
    without = edited(doc, traffic={**GATEWAY, "gatewayAPI": {"parentRefs": GATEWAY["gatewayAPI"]["parentRefs"]}})
    apply_md(cluster, namespace, without)
    wait_until(lambda: "hostnames" not in cluster.get_json("-n", namespace, "httproute", "hosts")["spec"],
               timeout=30, what="hostnames removed from the HTTPRoute",
               describe=lambda: cluster.get_json("-n", namespace, "httproute", "hosts")["spec"])


def test_switching_back_to_the_replicas_provider_widens_the_client_service(cluster, namespace, operator):
    """Found by the stateful test: a Service's selector is an atomic map, so
    containment alone never saw the role key go; the client Service kept
    selecting stable pods only and the replicas provider's split was a lie."""
    doc = model_deployment("widen", replicas=1, traffic=GATEWAY)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "widen")
    assert cluster.get_json("-n", namespace, "service", "widen")["spec"]["selector"] == {
        "modeldeploy.io/name": "widen", "modeldeploy.io/role": "stable"}
    apply_md(cluster, namespace, edited(doc, traffic={"provider": "replicas"}))
    wait_until(lambda: cluster.get_json("-n", namespace, "service", "widen")["spec"]["selector"]
               == {"modeldeploy.io/name": "widen"}, timeout=30, what="the client Service selects both roles again",
               describe=lambda: cluster.get_json("-n", namespace, "service", "widen")["spec"]["selector"])
    assert not exists(cluster, namespace, "httproute", "widen")
