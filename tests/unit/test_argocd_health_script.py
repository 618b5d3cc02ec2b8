"""Argo CD's health script on the states a live rollout rarely stops in long
enough to sample (tests/e2e/test_argocd_health.py covers the live ones)."""
from __future__ import annotations

from support.argocd import argocd_health


def md(generation=2, **status):
    return {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "m", "generation": generation}, "spec": {}, **({"status": status} if status else {})}


def cond(type_, status, reason="R", message=""):
    return {"type": type_, "status": status, "reason": reason, "message": message}


def test_no_status_yet_is_progressing():
    assert argocd_health(md())["status"] == "Progressing"


def test_a_status_for_an_older_generation_is_progressing_even_if_it_said_ready():
    health = argocd_health(md(generation=3, observedGeneration=2, phase="Ready",
                              conditions=[cond("Ready", "True")]))
    assert health == {"status": "Progressing", "message": "Waiting for the operator to observe generation 3"}


def test_invalid_spec_is_degraded_with_the_reason():
    health = argocd_health(md(observedGeneration=2, phase="Failed", conditions=[
        cond("Ready", "False"), cond("Stalled", "True", "InvalidSpec", "spec.model.format: unknown")]))
    assert health == {"status": "Degraded", "message": "InvalidSpec: spec.model.format: unknown"}


def test_serving_revision_losing_replicas_is_degraded():
    health = argocd_health(md(observedGeneration=2, phase="Degraded", message="1 of 2 replicas ready",
                              conditions=[cond("Ready", "False", "ReplicasNotReady"), cond("Stalled", "False")]))
    assert health == {"status": "Degraded", "message": "1 of 2 replicas ready"}


def test_paused_after_inconclusive_analysis_is_suspended():
    health = argocd_health(md(observedGeneration=2, phase="Paused",
                              rollout={"pausedReason": "analysis inconclusive: no data"},
                              conditions=[cond("Ready", "False"), cond("Stalled", "False")]))
    assert health == {"status": "Suspended", "message": "analysis inconclusive: no data"}


def test_shadow_and_preview_converge_on_their_own():
    for phase, message in (("Shadow", "canary v2 takes 0% of traffic, and a copy of 20% of the requests"),
                           ("Preview", "canary v2 takes 0% of traffic (step 1/3)")):
        health = argocd_health(md(observedGeneration=2, phase=phase, rollout={"stage": "Canary"},
                                  conditions=[cond("Ready", "False", "CanaryInProgress", message),
                                              cond("Stalled", "False")]))
        assert health == {"status": "Progressing", "message": message}, phase


def test_a_running_smoke_check_is_progressing_and_names_its_job():
    health = argocd_health(md(observedGeneration=2, phase="CheckRunning",
                              rollout={"check": {"name": "predict", "at": "PreRollout", "job": "m-predict-1a2b3c4d",
                                                 "phase": "Running"}},
                              conditions=[cond("Ready", "False", "CheckRunning"), cond("Stalled", "False")]))
    assert health == {"status": "Progressing",
                      "message": "CheckRunning: check predict (PreRollout) runs as Job m-predict-1a2b3c4d"}
