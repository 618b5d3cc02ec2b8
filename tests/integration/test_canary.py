"""Progressive canary rollouts on the real control plane: traffic moves step
by step, waits for ready capacity and for approval, and ends promoted or
rolled back, with the stable revision serving throughout."""
from __future__ import annotations

from support.canary import (GATEWAY, WeightRecorder, canary_exists, model_v, route_weights, stable_template,
                            wait_phase)
from support.models import apply_md, condition, get_md, is_true, model_deployment, status_view, wait_ready
from support.waiting import wait_until



def test_gateway_api_canary_follows_steps_waits_for_approval_then_promotes(cluster, namespace, operator):
    doc = model_deployment("fraud", replicas=4, traffic=GATEWAY, rollout={
        "steps": [{"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "fraud")
    assert route_weights(cluster, namespace, "fraud") == (100, 0)

    with WeightRecorder(cluster, namespace, "fraud") as recorder:
        apply_md(cluster, namespace, model_v(doc, "v2"))
        paused = wait_phase(cluster, namespace, "fraud", "Paused")
        assert route_weights(cluster, namespace, "fraud") == (50, 50)
        assert paused["status"]["rollout"]["pausedReason"]
        assert paused["status"]["canary"]["modelVersion"] == "v2"
        assert paused["status"]["stable"]["modelVersion"] == "v1"
        assert paused["status"]["traffic"] == {"stable": 50, "canary": 50, "verified": True}
        assert not is_true(paused, "Ready")  # kstatus: the spec is not yet fully realized

        apply_md(cluster, namespace, model_v(doc, "v2", rollout={**doc["spec"]["rollout"], "approvedVersion": "v2"}))
        done = wait_until(lambda: is_true(m := get_md(cluster, namespace, "fraud"), "Ready")
                          and m["status"]["stable"]["modelVersion"] == "v2" and m,
                          timeout=60, what="promotion", describe=lambda: status_view(get_md(cluster, namespace, "fraud")))
        wait_until(lambda: not canary_exists(cluster, namespace, "fraud"), timeout=30, what="the canary removed")
        wait_until(lambda: route_weights(cluster, namespace, "fraud") == (100, 0), timeout=30, what="100/0")

    assert recorder.seen[0] == (100, 0) and recorder.seen[-1] == (100, 0)
    assert [w for w in recorder.seen if w != (100, 0)] == [(75, 25), (50, 50)], recorder.seen
    assert [(h["modelVersion"], h["result"]) for h in done["status"]["history"]] == [("v1", "Deployed"), ("v2", "Promoted")]
    assert done["status"]["phase"] == "Ready" and done["status"]["traffic"]["canary"] == 0
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="modeldeploy.io/name=fraud").items
    assert {p.metadata.labels["modeldeploy.io/revision"] for p in pods if p.metadata.deletion_timestamp is None} \
        == {done["status"]["stable"]["revision"]}


def test_promote_annotation_passes_an_open_pause_and_is_consumed(cluster, namespace, operator):
    doc = model_deployment("annotated", replicas=2, traffic=GATEWAY,
                           rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "annotated")
    apply_md(cluster, namespace, model_v(doc, "v2"))
    wait_phase(cluster, namespace, "annotated", "Paused")
    cluster.kubectl("-n", namespace, "annotate", "md", "annotated", "modeldeploy.io/promote=true")
    done = wait_until(lambda: is_true(m := get_md(cluster, namespace, "annotated"), "Ready")
                      and m["status"]["stable"]["modelVersion"] == "v2" and m,
                      timeout=60, what="promotion", describe=lambda: status_view(get_md(cluster, namespace, "annotated")))
    assert "modeldeploy.io/promote" not in (done["metadata"].get("annotations") or {})


def test_never_ready_canary_rolls_back_after_the_deadline_and_stable_is_untouched(cluster, namespace, operator):
    doc = model_deployment("stuck", replicas=2, traffic=GATEWAY,
                           rollout={"progressDeadlineSeconds": 10, "steps": [{"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "stuck")
    before = stable_template(cluster, namespace, "stuck")

    bad = model_v(doc, "v2")
    bad["spec"]["podMetadata"] = {"labels": {"sim.modeldeploy.io/behavior": "never-ready"}}
    with WeightRecorder(cluster, namespace, "stuck") as recorder:
        apply_md(cluster, namespace, bad)
        md = wait_phase(cluster, namespace, "stuck", "RolledBack", timeout=60)
        wait_until(lambda: not canary_exists(cluster, namespace, "stuck"), timeout=30, what="the canary removed")
    # Traffic never went to pods that were not ready.
    assert set(recorder.seen) == {(100, 0)}, recorder.seen
    stalled = condition(md, "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "RolledBack"
    assert "v1" in md["status"]["message"] or "v1" in stalled["message"]
    assert md["status"]["stable"]["modelVersion"] == "v1"
    assert stable_template(cluster, namespace, "stuck") == before
    assert cluster.apps.read_namespaced_deployment("stuck-stable", namespace).status.ready_replicas == 2
    assert md["status"]["history"][-1]["result"] == "RolledBack"
    events = [e for e in cluster.core.list_namespaced_event(namespace).items if e.reason == "RolledBack"]
    assert len(events) == 1 and events[0].type == "Warning"

    # Setting the spec back to the stable version clears the failure, no canary.
    apply_md(cluster, namespace, doc)
    back = wait_ready(cluster, namespace, "stuck")
    assert not is_true(back, "Stalled") and not canary_exists(cluster, namespace, "stuck")
    assert back["status"]["stable"]["modelVersion"] == "v1"


def test_crashlooping_canary_rolls_back_quickly(cluster, namespace, operator):
    doc = model_deployment("crashy", replicas=2, traffic=GATEWAY,
                           rollout={"progressDeadlineSeconds": 300, "steps": [{"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "crashy")
    bad = model_v(doc, "v2")
    bad["spec"]["podMetadata"] = {"labels": {"sim.modeldeploy.io/behavior": "crashloop"}}
    apply_md(cluster, namespace, bad)
    # Far sooner than the 300s deadline: a crash loop is not worth waiting for.
    md = wait_phase(cluster, namespace, "crashy", "RolledBack", timeout=45)
    assert "crash-looping" in condition(md, "Stalled")["message"]
    assert route_weights(cluster, namespace, "crashy") == (100, 0)
    assert cluster.apps.read_namespaced_deployment("crashy-stable", namespace).status.ready_replicas == 2


def test_replicas_provider_reports_the_achieved_split(cluster, namespace, operator):
    doc = model_deployment("ratio", replicas=3, rollout={"steps": [{"setWeight": 30}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "ratio")
    apply_md(cluster, namespace, model_v(doc, "v2"))
    wait_phase(cluster, namespace, "ratio", "Paused")
    # The step passed on the canary pod's own Ready condition; the
    # Deployment's readyReplicas, which the status counts, follows a moment later.
    md = wait_until(lambda: (m := get_md(cluster, namespace, "ratio"))["status"]["canary"]["readyReplicas"] and m,
                    timeout=30, what="the canary's ready pod counted",
                    describe=lambda: status_view(get_md(cluster, namespace, "ratio")))
    canary_ready = md["status"]["canary"]["readyReplicas"]
    stable_ready = md["status"]["stable"]["readyReplicas"]
    # 30% asked; the client Service spreads requests over every ready pod, so
    # c canary pods next to 3 stable take c/(3+c): the closest is 1 pod, 25%,
    # which is what status reports, and the message says the step was rounded.
    assert (stable_ready, canary_ready) == (3, 1)
    assert md["status"]["traffic"] == {"stable": 75, "canary": 25, "verified": True}
    assert "setWeight 30 rounds to 25%" in md["status"]["message"]


def test_istio_virtualservice_weights_follow_the_rollout(cluster, namespace, operator):
    traffic = {"provider": "istio", "istio": {"hosts": ["fraud.example.com"], "gateways": ["istio-system/public-gw"]}}
    doc = model_deployment("meshed", replicas=2, traffic=traffic, rollout={"steps": [{"setWeight": 30}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "meshed")
    assert route_weights(cluster, namespace, "meshed", "virtualservice") == (100, 0)
    apply_md(cluster, namespace, model_v(doc, "v2"))
    wait_phase(cluster, namespace, "meshed", "Paused")
    assert route_weights(cluster, namespace, "meshed", "virtualservice") == (70, 30)
    vs = cluster.get_json("-n", namespace, "virtualservice", "meshed")
    hosts = [r["destination"]["host"] for r in vs["spec"]["http"][0]["route"]]
    assert hosts == [f"meshed-stable.{namespace}.svc.cluster.local", f"meshed-canary.{namespace}.svc.cluster.local"]


def test_spec_change_mid_rollout_aborts_and_starts_fresh(cluster, namespace, operator):
    doc = model_deployment("fickle", replicas=2, traffic=GATEWAY,
                           rollout={"steps": [{"setWeight": 40}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "fickle")
    apply_md(cluster, namespace, model_v(doc, "v2"))
    first = wait_phase(cluster, namespace, "fickle", "Paused")
    apply_md(cluster, namespace, model_v(doc, "v3"))
    second = wait_until(lambda: (m := get_md(cluster, namespace, "fickle"))["status"].get("canary", {}) and
                        m["status"]["canary"].get("modelVersion") == "v3" and m["status"]["phase"] == "Paused" and m,
                        timeout=60, what="a fresh canary for v3",
                        describe=lambda: status_view(get_md(cluster, namespace, "fickle")))
    assert second["status"]["canary"]["revision"] != first["status"]["canary"]["revision"]
    assert [(h["modelVersion"], h["result"]) for h in second["status"]["history"]][-1] == ("v2", "Aborted")
    assert second["status"]["stable"]["modelVersion"] == "v1"
    assert second["status"]["rollout"]["failedChecks"] == 0


def test_weight_waits_for_slow_canary_pods(cluster, namespace, operator):
    doc = model_deployment("patient", replicas=2, traffic=GATEWAY, rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "patient")
    slow = model_v(doc, "v2")
    slow["spec"]["podMetadata"] = {"annotations": {"sim.modeldeploy.io/ready-after": "5s"}}
    with WeightRecorder(cluster, namespace, "patient") as recorder:
        apply_md(cluster, namespace, slow)
        wait_phase(cluster, namespace, "patient", "Paused")
        # The recorder reads with kubectl, slow under load: let it see the move.
        wait_until(lambda: any(w[1] > 0 for w in recorder.seen), timeout=30, what="the recorder to see the weight move",
                   describe=lambda: recorder.seen)
    moved_at = recorder.first_time(lambda w: w[1] > 0)
    pods = cluster.core.list_namespaced_pod(namespace, label_selector="modeldeploy.io/role=canary").items
    ready_at = max(next(c.last_transition_time for c in p.status.conditions if c.type == "Ready") for p in pods)
    # The route only moved once the canary pods could take the traffic.
    assert moved_at >= ready_at.timestamp() - 0.5, (moved_at, ready_at)


def test_abort_annotation_rolls_back_now(cluster, namespace, operator):
    doc = model_deployment("aborted", replicas=2, traffic=GATEWAY, rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "aborted")
    apply_md(cluster, namespace, model_v(doc, "v2"))
    wait_phase(cluster, namespace, "aborted", "Paused")
    cluster.kubectl("-n", namespace, "annotate", "md", "aborted", "modeldeploy.io/abort=true")
    wait_phase(cluster, namespace, "aborted", "RolledBack", timeout=30)
    # Recorded first (the status), then consumed: the annotation goes right after.
    md = wait_until(lambda: "modeldeploy.io/abort" not in ((m := get_md(cluster, namespace, "aborted"))["metadata"]
                                                          .get("annotations") or {}) and m,
                    timeout=10, what="the abort annotation consumed")
    assert route_weights(cluster, namespace, "aborted") == (100, 0)
    assert md["status"]["stable"]["modelVersion"] == "v1"
