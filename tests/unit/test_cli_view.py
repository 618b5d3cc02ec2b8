"""`modeldeploy status` and `modeldeploy history` as a user reads them, from
recorded ModelDeployments (tests/unit/golden/cli/*.yaml) at a fixed time.

After an intended change, regenerate and review the diff:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_cli_view.py
"""
import copy
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from modeldeploy.cli.status_view import Style, render_history, render_status, traffic_bar
from support.golden import assert_text_matches_golden

GOLDEN = Path(__file__).parent / "golden" / "cli"
NOW = datetime(2026, 11, 27, 12, 1, 42, tzinfo=timezone.utc)


def recorded() -> dict:
    return yaml.safe_load((GOLDEN / "paused-canary.yaml").read_text())


def waiting_for_approval() -> dict:
    md = recorded()
    md["status"].update(phase="Paused", traffic={"stable": 40, "canary": 60, "verified": True},
                        canary={"revision": "9ab1c2d3e4", "modelVersion": "v8", "replicas": 3, "readyReplicas": 3})
    md["status"]["rollout"].update(step=3, weight=60, pausedReason=(
        "waiting for approval: set spec.rollout.approvedVersion to v8 or annotate modeldeploy.io/promote"))
    return md


def weight_waiting_for_pods() -> dict:
    md = recorded()
    md["status"]["canary"].update(replicas=2, readyReplicas=1)
    md["status"]["traffic"] = {"stable": 100, "canary": 0, "verified": True}
    md["status"]["rollout"].update(step=0, weight=0, notReadySince="2026-11-27T12:01:10Z", decisions=[])
    del md["status"]["rollout"]["lastAnalysisAt"]
    return md


def promoting() -> dict:
    md = recorded()
    md["status"].update(phase="Promoting")
    md["status"]["stable"].update(readyReplicas=2)
    md["status"]["rollout"].update(stage="Promoting", step=4)
    return md


def rolled_back() -> dict:
    md = recorded()
    status = md["status"]
    status.update(phase="RolledBack", traffic={"stable": 100, "canary": 0, "verified": True},
                  message="rolled back v8 (revision 9ab1c2d3e4): error-rate 0.09 > 0.05. The cluster serves "
                          "the stable v7 (revision 5f0c2a91d3)")
    del status["canary"]
    status["conditions"][0].update(reason="RolledBack", message=status["message"])
    status["conditions"][1].update(status="False", reason="Reconciled", message="")
    status["conditions"][2].update(status="True", reason="RolledBack", message=status["message"],
                                   lastTransitionTime="2026-11-27T12:01:40Z")
    status["rollout"].update(stage="RolledBack", weight=0,
                             message="error-rate 0.09 > 0.05 (failed checks 3 > failureLimit 2)")
    status["history"].append({"revision": "9ab1c2d3e4", "modelVersion": "v8", "uri": "s3://models/fraud/v8",
                              "result": "RolledBack", "time": "2026-11-27T12:01:40Z"})
    return md


def steady() -> dict:
    md = recorded()
    md["spec"] = {"model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn"}, "replicas": 4}
    message = "revision 5f0c2a91d3 (v7) serves with 4 ready replicas"
    md["status"] = {
        "observedGeneration": 3, "phase": "Ready", "message": message,
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "Serving", "message": message,
             "lastTransitionTime": "2026-11-25T14:30:40Z"},
            {"type": "Reconciling", "status": "False", "reason": "Reconciled",
             "lastTransitionTime": "2026-11-25T14:30:40Z"},
            {"type": "Stalled", "status": "False", "reason": "NotStalled",
             "lastTransitionTime": "2026-11-20T09:00:00Z"}],
        "stable": {"revision": "5f0c2a91d3", "modelVersion": "v7", "replicas": 4, "readyReplicas": 4},
        "traffic": {"stable": 100, "canary": 0, "verified": True},
        "url": "http://fraud.models.svc.cluster.local",
        "history": recorded()["status"]["history"],
    }
    return md


def behind_its_spec() -> dict:
    md = steady()
    md["metadata"]["generation"] = 4
    return md


def many_decisions() -> dict:
    md = recorded()
    decisions = md["status"]["rollout"]["decisions"]
    md["status"]["rollout"]["decisions"] = [
        {**decisions[i % 2], "time": f"2026-11-27T11:{50 + i // 2:02d}:00Z"} for i in range(12)]
    return md


def shadow() -> dict:
    """Issue 12: a shadow step at 0% weight, header requests on the canary."""
    md = recorded()
    md["spec"]["traffic"]["canaryHeaders"] = [{"name": "x-model-canary", "value": "true"}]
    md["spec"]["rollout"]["steps"] = [{"setMirror": {"percent": 20}}, {"pause": {"duration": "10m"}},
                                      {"setWeight": 50}]
    md["status"].update(phase="Shadow", traffic={"stable": 100, "canary": 0, "verified": True, "mirror": 20,
                                                 "headersToCanary": True})
    md["status"]["rollout"].update(step=1, totalSteps=3, weight=0, mirror=20)
    return md


def blue_green_preview() -> dict:
    """Issue 12: a blue-green preview coming up at full size."""
    md = recorded()
    md["spec"]["rollout"] = {"strategy": "BlueGreen", "blueGreen": {"scaleDownDelay": "5m"}}
    md["status"].update(phase="Preview", traffic={"stable": 100, "canary": 0, "verified": True},
                        canary={"revision": "9ab1c2d3e4", "modelVersion": "v8", "replicas": 4, "readyReplicas": 2})
    md["status"]["rollout"].update(step=0, totalSteps=4, weight=0, strategy="BlueGreen", decisions=[])
    del md["status"]["rollout"]["lastAnalysisAt"]
    return md


def check_running() -> dict:
    """A PreRollout smoke check running, an earlier one passed and one failed before (issue 12 item 4)."""
    md = recorded()
    md["spec"]["traffic"] = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
    md["spec"]["rollout"]["checks"] = [
        {"name": name, "at": "PreRollout", "timeout": "2m",
         "job": {"template": {"template": {"spec": {"containers": [{"name": "smoke", "image": "smoke:1"}]}}}}}
        for name in ("health", "predict")]
    md["status"].update(phase="CheckRunning", traffic={"stable": 100, "canary": 0, "verified": True})
    md["status"]["rollout"].update(step=0, weight=0, passedChecks=["health"], check={
        "name": "predict", "job": "fraud-predict-1a2b3c4d", "at": "PreRollout", "phase": "Running",
        "startedAt": "2026-11-27T12:01:00Z", "timeoutSeconds": 120}, decisions=[
        {"time": "2026-11-27T12:00:58Z", "metric": "check/health", "job": "fraud-health-5e6f7a8b",
         "outcome": "Passed", "verdict": "Pass", "action": "Continue", "message": "Job fraud-health-5e6f7a8b succeeded"}])
    del md["status"]["rollout"]["lastAnalysisAt"]
    running = ("canary v8 (revision 9ab1c2d3e4): check predict (PreRollout) is running as Job fraud-predict-1a2b3c4d; "
               "the canary takes 0% of traffic (step 1/4); stable serves v7 (revision 5f0c2a91d3)")
    md["status"]["message"] = running
    for condition in md["status"]["conditions"][:2]:
        condition.update(reason="CheckRunning", message=running)
    return md


CASES = {
    "shadow": shadow,
    "blue-green-preview": blue_green_preview,
    "check-running": check_running,
    "canary-pause": recorded,
    "canary-approval": waiting_for_approval,
    "canary-waits-for-pods": weight_waiting_for_pods,
    "promoting": promoting,
    "rolled-back": rolled_back,
    "ready": steady,
    "behind-its-spec": behind_its_spec,
    "many-decisions": many_decisions,
}


def _check_golden(name: str, text: str) -> None:
    assert_text_matches_golden(f"cli/{name}.txt", text)


@pytest.mark.parametrize("name", sorted(CASES))
def test_status_view_matches_golden(name):
    _check_golden(f"status-{name}", render_status(CASES[name](), NOW))


def test_history_matches_golden():
    _check_golden("history", render_history(rolled_back()))


def test_the_traffic_bar_shows_the_split_in_twenty_cells():
    assert traffic_bar(70, 30) == "stable ██████████████░░░░░░ 70% | canary 30%"
    assert traffic_bar(100, 0) == "stable ████████████████████ 100% | canary 0%"
    assert traffic_bar(0, 100) == "stable ░░░░░░░░░░░░░░░░░░░░ 0% | canary 100%"


def test_a_canary_view_says_what_the_step_waits_for():
    view = render_status(recorded(), NOW)
    assert "stable ██████████████░░░░░░ 70% | canary 30%" in view
    assert "2/4  pause 60s: ends in 18s" in view
    assert "waiting for approval: set spec.rollout.approvedVersion to v8" in render_status(waiting_for_approval(), NOW)
    assert "waiting for the canary pods to be ready (1/2 ready)" in render_status(weight_waiting_for_pods(), NOW)


def test_plain_output_has_no_escape_codes_and_colour_only_paints():
    md = rolled_back()
    plain, coloured = render_status(md, NOW), render_status(md, NOW, Style(colour=True))
    assert "\x1b" not in plain
    assert "\x1b[" in coloured
    import re
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_an_object_without_status_points_at_the_operator():
    md = recorded()
    del md["status"]
    assert "no status yet" in render_status(md, NOW) and "modeldeploy run" in render_status(md, NOW)
    assert render_history(md) == "fraud: no revisions recorded yet\n"


def test_a_status_from_another_operator_version_still_renders():
    md = recorded()
    md["status"]["someFutureField"] = {"x": 1}
    md["spec"]["rollout"]["steps"] = "not a list"  # unreadable steps: the step is shown without its detail
    view = render_status(copy.deepcopy(md), NOW)
    assert "step      2/4  (cannot read spec.rollout.steps" in view


def test_capacity_mode_replace_shows_the_pod_budget_in_use():
    md = {"metadata": {"name": "llm", "namespace": "ml", "generation": 2},
          "status": {"observedGeneration": 2, "phase": "Canary", "traffic": {"stable": 50, "canary": 50},
                     "capacity": {"mode": "Replace", "budget": 2, "minReady": 1, "stable": 1, "canary": 1,
                                  "surge": 0, "replicas": 2, "selector": "modeldeploy.io/name=llm"}}}
    text = render_status(md, datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert "  pods      stable 1, canary 1 of a budget of 2 (capacity mode Replace; at least 1 ready)" in text
