"""Issue 12, item 3: strategy BlueGreen through the pure machine
(support/rollout_world.py: every pass starts from the stored status only)."""

import pytest

from modeldeploy.api import InvalidSpec
from modeldeploy.rollout import ABORT, PROMOTE, AnalysisResults, MetricResult
from modeldeploy.traffic import ALL_STABLE, Weights
from support.rollout_world import run, settled_world, spec_for

GATEWAY = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
ANALYSIS = {
    "interval": "30s",
    "failureLimit": 0,
    "prometheus": {"address": "http://prometheus:9090"},
    "metrics": [{"name": "error-rate", "query": 'errors{revision="{{canary.revision}}"}', "max": 0.05}],
}


def bg(version, traffic=GATEWAY, replicas=4, **blue_green):
    rollout = {"strategy": "BlueGreen", **({"blueGreen": blue_green} if blue_green else {})}
    analysis = rollout["blueGreen"].pop("analysis", None) if blue_green else None
    if analysis:
        rollout["analysis"] = analysis
    return spec_for(version, replicas=replicas, traffic=traffic, rollout=rollout)


def previewing(traffic=GATEWAY, **blue_green):
    world = settled_world(bg("v7", traffic, **blue_green))
    world.change(bg("v8", traffic, **blue_green))
    return world


def approved(world):
    raw = world.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["rollout"]["approvedVersion"] = "v8"
    world.change(spec_for("v8", **{k: v for k, v in raw.items() if k != "model"}))


def test_the_new_revision_comes_up_at_full_size_with_no_traffic_then_waits_for_approval():
    world = previewing()
    decision = world.reconcile()
    assert decision.canary_replicas == 4 and decision.weights == ALL_STABLE
    assert world.rollout["step"] == 0, "the preview is not ready yet"
    world.pods_ready()
    world.reconcile()
    assert world.phase == "Paused" and "approval" in world.rollout["pausedReason"]
    assert world.route == ALL_STABLE and world.stable.version == "v7" and world.canary.ready == 4
    run(world, 3, seconds=60)
    assert world.route == ALL_STABLE, "no traffic moves without approval"


def test_approval_switches_all_traffic_at_once_and_the_old_revision_stays_warm_for_the_delay():
    world = previewing(scaleDownDelay="30s")
    run(world, 2)
    approved(world)
    world.reconcile()
    assert world.route == Weights.to_canary(100), "all at once"
    seen = {w.canary for w, _, _ in world.passes}
    assert seen == {0, 100}, f"never a split in between: {seen}"
    run(world, 2, seconds=10)
    assert world.stable.version == "v7" and world.stable.ready == 4, "the old revision keeps its pods"
    assert world.rollout["stage"] == "Canary"
    run(world, 6, seconds=11)
    assert world.results()[-1] == "Promoted" and world.stable.version == "v8" and world.canary is None
    assert world.route == ALL_STABLE


def test_an_abort_within_the_delay_switches_back_at_once_to_the_warm_old_revision():
    world = previewing(scaleDownDelay="5m")
    run(world, 2)
    approved(world)
    run(world, 2)
    assert world.route == Weights.to_canary(100)
    stable_pods = (world.stable.revision, world.stable.ready)
    world.annotations[ABORT] = "true"
    decision = world.reconcile()
    assert decision.weights == ALL_STABLE and decision.canary_replicas is None
    assert (world.stable.revision, world.stable.ready) == stable_pods, "no cold start: stable was never touched"
    assert world.results()[-1] == "RolledBack"


def test_the_promote_annotation_is_blue_green_s_approval_not_a_rolling_update():
    world = previewing()
    run(world, 2)
    world.annotations[PROMOTE] = "true"
    world.reconcile()
    assert world.route == Weights.to_canary(100) and world.stable.version == "v7"
    assert world.rollout["stage"] == "Canary"


def test_auto_promote_judges_the_preview_with_analysis_and_rolls_back_before_any_client_request():
    def failing(plan):
        return AnalysisResults(metrics=(MetricResult("error-rate", 0.3),))

    world = previewing(autoPromote=True, analysis=ANALYSIS)
    world.analysis_answer = failing
    run(world, 2)
    assert world.rollout["lastAnalysisAt"], "the clock starts when the preview is ready"
    run(world, 3, seconds=31)
    assert world.results()[-1] == "RolledBack"
    assert max(w.canary for w, _, _ in world.passes) == 0


def test_auto_promote_without_analysis_switches_once_the_preview_is_ready():
    world = previewing(autoPromote=True, scaleDownDelay="0s")
    world.reconcile()
    assert world.route == ALL_STABLE
    world.pods_ready()
    run(world, 6)
    assert world.results()[-1] == "Promoted"


def test_with_the_replicas_provider_the_client_service_selector_switches_all_at_once():
    world = previewing(traffic={}, scaleDownDelay="30s")
    run(world, 3)
    assert world.client_role == "stable" and world.canary.ready == 4
    assert world.status["traffic"] == {"stable": 100, "canary": 0, "verified": True}
    approved(world)
    world.reconcile()
    assert world.client_role == "canary"
    world.reconcile()
    assert world.status["traffic"] == {"stable": 0, "canary": 100, "verified": True}
    run(world, 6, seconds=31)
    assert world.results()[-1] == "Promoted" and world.client_role == "stable"
    assert world.status["traffic"]["stable"] == 100


@pytest.mark.parametrize("rollout, message", [
    ({"strategy": "BlueGreen", "steps": [{"setWeight": 50}]}, "leave the steps out"),
    ({"strategy": "BlueGreen", "capacity": {"mode": "Replace"}}, "needs capacity mode Surge"),
    ({"blueGreen": {"autoPromote": True}}, "strategy is not BlueGreen"),
    ({"strategy": "BlueGreen", "blueGreen": {"scaleDownDelay": "25h"}}, "must be between"),
])
def test_blue_green_settings_that_cannot_work_are_refused_with_the_reason(rollout, message):
    with pytest.raises(InvalidSpec, match=message):
        spec_for("v1", replicas=2, rollout=rollout)


def test_the_preview_is_in_phase_preview_until_it_waits_for_approval():
    world = previewing()
    world.reconcile()
    assert world.phase == "Preview" and world.rollout["strategy"] == "BlueGreen"
    world.pods_ready()
    world.reconcile()
    assert world.phase == "Paused"


# -- hooks against the preview (issue 12: smoke-test checks) ----------------------

CHECK_JOB = {"template": {"spec": {"containers": [{"name": "smoke", "image": "python:3.12-slim"}]}}}


def bg_checked(version, *checks, **blue_green):
    rollout = {"strategy": "BlueGreen", "blueGreen": {"scaleDownDelay": "0s", **blue_green},
               "checks": [{"name": name, "at": at, "job": {"template": CHECK_JOB}, "timeout": "2m"}
                          for name, at in checks]}
    return spec_for(version, replicas=4, traffic=GATEWAY, rollout=rollout)


def test_a_pre_promotion_check_tests_the_preview_before_the_switch():
    world = settled_world(bg_checked("v7", ("e2e", "PrePromotion"), autoPromote=True))
    world.change(bg_checked("v8", ("e2e", "PrePromotion"), autoPromote=True))
    run(world, 4, seconds=6)
    assert world.rollout["check"]["name"] == "e2e" and world.phase == "CheckRunning"
    assert world.route == ALL_STABLE, "the preview takes no client request before its check passed"
    world.finish_job("Complete")
    run(world, 2)
    assert world.route == Weights.to_canary(100), "then the switch"
    run(world, 4)
    assert world.results()[-1] == "Promoted"


def test_a_failed_check_on_the_preview_rolls_back_with_no_client_request_served():
    world = settled_world(bg_checked("v7", ("smoke", "PreRollout")))
    world.change(bg_checked("v8", ("smoke", "PreRollout")))
    run(world, 3)
    world.finish_job("Failed")
    run(world, 2)
    assert world.results()[-1] == "RolledBack"
    assert max(w.canary for w, _, _ in world.passes) == 0


def test_the_promote_annotation_still_waits_for_the_preview_s_pre_promotion_check():
    world = settled_world(bg_checked("v7", ("e2e", "PrePromotion")))
    world.change(bg_checked("v8", ("e2e", "PrePromotion")))
    run(world, 3)
    world.annotations[PROMOTE] = "true"
    run(world, 2)
    assert world.route == ALL_STABLE and world.rollout["check"]["name"] == "e2e"
    world.finish_job("Complete")
    run(world, 2)
    assert world.route == Weights.to_canary(100)


def test_step_checks_with_blue_green_are_refused_with_the_reason():
    with pytest.raises(InvalidSpec, match="BlueGreen has no steps of yours"):
        bg_checked("v1", ("smoke", "Step 1"))
