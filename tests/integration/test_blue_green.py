"""Issue 12, item 3, on the real control plane: strategy BlueGreen. The new
revision comes up at full size behind <name>-preview with no client traffic,
waits for approval, takes all the traffic at once (route weights 0/100, or the
client Service's selector with the replicas provider), keeps the old revision
warm for scaleDownDelay, then promotes; an abort within the delay switches
back to the old pods, which were never touched."""
from __future__ import annotations

from support.canary import GATEWAY, WeightRecorder, canary_exists, model_v, route_weights, wait_phase
from support.models import apply_md, get_md, is_true, model_deployment, status_view
from support.sampling import ChangeRecorder
from support.waiting import wait_until

ROLE = "modeldeploy.io/role"


def blue_green(name, traffic=None, **settings):
    return model_deployment(name, replicas=2, **({"traffic": traffic} if traffic else {}),
                            rollout={"strategy": "BlueGreen", "blueGreen": {"scaleDownDelay": "3s", **settings}})


def approved(doc):
    rollout = {**doc["spec"]["rollout"], "approvedVersion": "v2"}
    return model_v(doc, "v2", rollout=rollout)


def promoted(cluster, namespace, name):
    return wait_until(lambda: is_true(m := get_md(cluster, namespace, name), "Ready")
                      and m["status"]["stable"]["modelVersion"] == "v2" and m,
                      timeout=90, what="promotion", describe=lambda: status_view(get_md(cluster, namespace, name)))


def preview_ready_pods(cluster, namespace, name) -> int:
    """Ready endpoints behind <name>-preview, as the EndpointSlice controller lists them."""
    slices = cluster.discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={name}-preview").items
    return sum(1 for s in slices for e in s.endpoints or () if e.conditions and e.conditions.ready)


def test_the_preview_takes_no_traffic_until_approved_then_all_at_once(cluster, namespace, operator):
    name = "bg-route"
    doc = blue_green(name, GATEWAY)
    apply_md(cluster, namespace, doc)
    wait_until(lambda: is_true(get_md(cluster, namespace, name), "Ready"), timeout=60, what="Ready on v1",
               describe=lambda: status_view(get_md(cluster, namespace, name)))
    with WeightRecorder(cluster, namespace, name) as recorder:
        apply_md(cluster, namespace, model_v(doc, "v2"))
        paused = wait_phase(cluster, namespace, name, "Paused")
        assert "approval" in paused["status"]["rollout"]["pausedReason"]
        canary = cluster.apps.read_namespaced_deployment(f"{name}-canary", namespace)
        assert canary.spec.replicas == 2 and canary.status.ready_replicas == 2, "the preview runs at full size"
        wait_until(lambda: preview_ready_pods(cluster, namespace, name) == 2, timeout=30,
                   what=f"{name}-preview to list the new revision's 2 ready pods")
        assert route_weights(cluster, namespace, name) == (100, 0)
        apply_md(cluster, namespace, approved(doc))
        done = promoted(cluster, namespace, name)
        wait_until(lambda: not canary_exists(cluster, namespace, name), timeout=30, what="the canary removed")
    assert [w for w in recorder.seen if w != (100, 0)] == [(0, 100)], f"all at once: {recorder.seen}"
    assert [(h["modelVersion"], h["result"]) for h in done["status"]["history"]] == [
        ("v1", "Deployed"), ("v2", "Promoted")]


def test_with_the_replicas_provider_the_client_service_switches_its_selector(cluster, namespace, operator):
    name = "bg-selector"
    doc = blue_green(name)
    apply_md(cluster, namespace, doc)
    wait_until(lambda: is_true(get_md(cluster, namespace, name), "Ready"), timeout=60, what="Ready on v1",
               describe=lambda: status_view(get_md(cluster, namespace, name)))

    def selected_role():
        return (cluster.core.read_namespaced_service(name, namespace).spec.selector or {}).get(ROLE)

    with ChangeRecorder(selected_role) as selectors:
        apply_md(cluster, namespace, model_v(doc, "v2"))
        paused = wait_phase(cluster, namespace, name, "Paused")
        assert paused["status"]["traffic"] == {"stable": 100, "canary": 0, "verified": True}, \
            "the canary's ready pods are not behind the client Service"
        apply_md(cluster, namespace, approved(doc))
        wait_until(lambda: (get_md(cluster, namespace, name)["status"].get("traffic") or {}).get("canary") == 100,
                   timeout=60, what="all traffic on v2 through the selector",
                   describe=lambda: status_view(get_md(cluster, namespace, name)))
        promoted(cluster, namespace, name)
    assert selectors.seen == ["stable", "canary", "stable"], selectors.seen


def test_an_abort_within_the_delay_switches_back_to_pods_that_were_never_touched(cluster, namespace, operator):
    name = "bg-abort"
    doc = blue_green(name, GATEWAY, scaleDownDelay="10m")
    apply_md(cluster, namespace, doc)
    wait_until(lambda: is_true(get_md(cluster, namespace, name), "Ready"), timeout=60, what="Ready on v1",
               describe=lambda: status_view(get_md(cluster, namespace, name)))
    stable_pods = {p.metadata.name for p in cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modeldeploy.io/name={name},{ROLE}=stable").items}
    apply_md(cluster, namespace, model_v(doc, "v2"))
    wait_phase(cluster, namespace, name, "Paused")
    apply_md(cluster, namespace, approved(doc))
    wait_until(lambda: route_weights(cluster, namespace, name) == (0, 100), timeout=60, what="the switch",
               describe=lambda: status_view(get_md(cluster, namespace, name)))
    cluster.kubectl("-n", namespace, "annotate", "md", name, "modeldeploy.io/abort=true")
    rolled = wait_phase(cluster, namespace, name, "RolledBack")
    assert route_weights(cluster, namespace, name) == (100, 0)
    assert rolled["status"]["stable"]["modelVersion"] == "v1"
    still = {p.metadata.name for p in cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modeldeploy.io/name={name},{ROLE}=stable").items}
    assert still == stable_pods, "the old revision's pods served on, no cold start"


def test_the_api_server_refuses_blue_green_settings_that_cannot_work(cluster, namespace):
    import json

    for rollout, message in [
        ({"strategy": "BlueGreen", "steps": [{"setWeight": 50}]}, "leave the steps out"),
        ({"strategy": "BlueGreen", "capacity": {"mode": "Replace"}}, "needs capacity mode Surge"),
        ({"blueGreen": {"autoPromote": True}}, "strategy is not BlueGreen"),
    ]:
        doc = model_deployment("bg-bad", replicas=2, rollout=rollout)
        refused = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc), check=False)
        assert refused.returncode != 0 and message in refused.stderr, (rollout, refused.stderr)
    # The default steps the API server fills in are no steps of the user's.
    accepted = cluster.kubectl("-n", namespace, "apply", "-f", "-",
                               input=json.dumps(model_deployment("bg-ok", replicas=2,
                                                                 rollout={"strategy": "BlueGreen"})))
    assert accepted.returncode == 0
