"""Slow model loads (issue 11) on the local control plane: kwok holds a pod
Pending for its `sim.modeldeploy.io/ready-after`, as a server loading a
large model would be. The model's loadTimeout, not progressDeadlineSeconds,
bounds a load that has its node; past it, the status says the model did not
load in time, and a canary is rolled back."""
from __future__ import annotations

import time

from support.canary import model_v, wait_phase
from support.models import apply_md, condition, get_md, is_true, model_deployment, status_view, wait_ready
from support.waiting import wait_until

LOAD = "20s"  # how long kwok's pods take to turn ready here


def slow(doc: dict, load: str = LOAD, timeout: str | None = None) -> dict:
    doc["spec"]["podMetadata"] = {"annotations": {"sim.modeldeploy.io/ready-after": load}}
    if timeout:
        doc["spec"]["model"]["loadTimeout"] = timeout
    return doc


def startup_probe(cluster, namespace: str, deployment: str) -> dict:
    template = cluster.apps.read_namespaced_deployment(deployment, namespace).spec.template
    probe = next(c for c in template.spec.containers if c.name == "model-server").startup_probe
    return {"period": probe.period_seconds, "threshold": probe.failure_threshold}


def test_a_slow_model_within_its_load_timeout_outlives_the_progress_deadline_and_promotes(
        cluster, namespace, operator):
    rollout = {"progressDeadlineSeconds": 10, "steps": [{"setWeight": 50}]}
    doc = model_deployment("big", replicas=1, rollout=rollout)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "big")

    started = time.monotonic()
    apply_md(cluster, namespace, slow(model_v(doc, "v2"), timeout="1m"))
    md = wait_until(lambda: (m := get_md(cluster, namespace, "big")) and (condition(m, "Ready") or {}).get("reason")
                    == "LoadingModel" and m, timeout=15, what="the status to say the canary loads its model",
                    describe=lambda: status_view(get_md(cluster, namespace, "big")))
    assert "loadTimeout 1m" in md["status"]["message"] and "loading its model since" in md["status"]["message"]
    assert startup_probe(cluster, namespace, "big-canary") == {"period": 10, "threshold": 6}
    # The 10 s deadline passes while the model loads: nothing is rolled back.
    done = wait_until(lambda: is_true(m := get_md(cluster, namespace, "big"), "Ready")
                      and m["status"]["stable"]["modelVersion"] == "v2" and m,
                      timeout=90, what="v2 promoted", describe=lambda: status_view(get_md(cluster, namespace, "big")))
    took = time.monotonic() - started
    assert took > 20, f"promoted after {took:.0f} s, before the model could have loaded"
    assert [h["result"] for h in done["status"]["history"]] == ["Deployed", "Promoted"]
    print(f"\nslow canary (ready after {LOAD}, progressDeadlineSeconds 10, loadTimeout 1m) promoted in {took:.0f} s")


def test_a_model_that_does_not_load_within_its_load_timeout_is_said_so(cluster, namespace, operator):
    # A first deploy: Stalled with the reason, within the pass after the budget.
    apply_md(cluster, namespace, slow(model_deployment("huge", replicas=1), timeout="10s"))
    md = wait_until(lambda: (m := get_md(cluster, namespace, "huge")) and is_true(m, "Stalled") and m,
                    timeout=30, what="the first deploy to stall", describe=lambda: status_view(get_md(cluster, namespace, "huge")))
    stalled = condition(md, "Stalled")
    assert stalled["reason"] == "ModelLoadTimeout", stalled
    assert "did not load its model within loadTimeout 10s of being scheduled" in stalled["message"]

    # A canary: rolled back with the same words; stable keeps serving.
    doc = model_deployment("canary-huge", replicas=1, rollout={"steps": [{"setWeight": 50}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "canary-huge")
    started = time.monotonic()
    apply_md(cluster, namespace, slow(model_v(doc, "v2"), timeout="10s"))
    md = wait_phase(cluster, namespace, "canary-huge", "RolledBack", timeout=40)
    message = condition(md, "Stalled")["message"]
    assert "did not load its model within loadTimeout 10s" in message, message
    assert md["status"]["rollout"]["decisions"][-1]["metric"] == "model-load"
    assert cluster.apps.read_namespaced_deployment("canary-huge-stable", namespace).status.ready_replicas == 1
    print(f"\ncanary not loading within 10s: rolled back {time.monotonic() - started:.0f} s after the apply")
