"""The rollout machine, scenario by scenario, as a user would judge it from
status, Events and what runs. Every pass starts from the stored status only."""

from dataclasses import replace

import pytest

from modeldeploy.builders import compute_revision
from modeldeploy.rollout import ABORT, PROMOTE, AnalysisResults, MetricResult, canary_replicas, decide, read_state, render
from modeldeploy.rollout.snapshot import spec_for_stable, take_snapshot
from modeldeploy.traffic import ALL_STABLE, Weights
from support.rollout_world import TABLE, run, settled_world, spec_for

STEPS_FAST = {"steps": [{"setWeight": 25}, {"pause": {"duration": "10s"}}, {"setWeight": 50}]}
GATEWAY = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
ANALYSIS = {
    "interval": "30s",
    "failureLimit": 1,
    "prometheus": {"address": "http://prometheus:9090"},
    "metrics": [{"name": "error-rate", "query": 'errors{revision="{{canary.revision}}"}', "max": 0.05}],
}


def v(version, **extra):
    return spec_for(version, replicas=4, **extra)



# -- sizing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "base, weight, expected",
    [(4, 0, 1), (4, 20, 1), (4, 25, 1), (4, 50, 2), (4, 100, 4), (10, 5, 1), (10, 33, 4), (3, 50, 2), (1, 100, 1)],
)
def test_canary_is_its_share_of_stable_never_less_than_one(base, weight, expected):
    assert canary_replicas(base, weight) == expected


# -- first revision, steady state -------------------------------------------------


def test_first_revision_goes_straight_to_stable():
    world = settled_world(v("v7"))
    assert world.canary is None
    assert world.phase == "Ready" and world.condition("Ready") == ("True", "Serving")
    assert world.status["stable"]["revision"] == world.revision
    assert world.status["stable"]["spec"]["model"]["version"] == "v7"
    assert world.rollout["stage"] == "Stable"


def test_steady_state_decides_the_same_every_pass():
    world = settled_world(v("v7"))
    before = dict(world.status)
    decision = world.reconcile()
    assert world.status == before and decision.requeue_after is None and decision.events == ()


def test_scaling_alone_starts_no_canary():
    world = settled_world(v("v7"))
    world.change(spec_for("v7", replicas=6))
    decision = world.reconcile()
    assert decision.canary_replicas is None and decision.stable_replicas == 6


# -- a canary walks its steps ---------------------------------------------------------


def test_default_steps_move_weight_only_as_pods_get_ready_then_promote():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    first = world.reconcile()
    assert [e.reason for e in first.events] == ["CanaryStarted"]
    # With `replicas` a canary pod is client traffic: the pass that starts
    # the canary records it and creates it with no pod; the next pass, whose
    # status names it, sizes it for 20% (no traffic until its pod is ready).
    assert first.weights == ALL_STABLE and first.canary_replicas == 0
    assert world.phase == "Canary" and world.condition("Ready") == ("False", "CanaryInProgress")
    assert world.condition("Reconciling") == ("True", "CanaryInProgress")
    assert world.reconcile().canary_replicas == 1

    world.reconcile()  # canary pod not ready yet: the weight waits
    assert world.passes[-1][0] == ALL_STABLE
    world.pods_ready()
    assert world.reconcile().weights == Weights(80, 20)
    assert world.rollout["step"] == 1 and world.rollout["stepStartedAt"]

    world.later(59)
    assert world.reconcile().weights == Weights(80, 20)  # pause of 60s not over
    world.later(1)
    at_50 = world.reconcile()
    # With the replicas provider, 4 canary pods next to 4 stable take 50%: scaled up first.
    assert at_50.canary_replicas == 4 and at_50.weights == Weights(80, 20)
    world.pods_ready()
    assert world.reconcile().weights == Weights(50, 50)
    world.later(60)
    promoting = world.reconcile()
    assert world.phase == "Promoting" and [e.reason for e in promoting.events] == ["Promoting"]
    assert compute_revision(promoting.stable_spec, TABLE) == world.revision
    assert promoting.weights == Weights(50, 50) and promoting.canary_replicas == 4  # canary serves meanwhile

    world.reconcile()  # new stable not ready yet: traffic stays, canary stays
    assert world.canary is not None
    world.pods_ready()
    done = world.reconcile()
    assert [e.reason for e in done.events] == ["Promoted"]
    assert done.weights == ALL_STABLE and done.canary_replicas is None
    assert world.results() == ["Deployed", "Promoted"]
    assert world.status["stable"]["revision"] == world.revision
    assert world.status["stable"]["spec"]["model"]["version"] == "v8"


def test_stable_keeps_rendering_the_old_revision_during_the_canary():
    world = settled_world(v("v7"))
    old = world.stable.revision
    world.change(v("v8"))
    decision = world.reconcile()
    assert compute_revision(decision.stable_spec, TABLE) == old
    assert world.stable.revision == old and world.status["stable"]["modelVersion"] == "v7"
    assert world.status["canary"]["revision"] == world.revision


def test_empty_steps_promote_as_soon_as_the_canary_is_ready():
    world = settled_world(v("v7", traffic=GATEWAY, rollout={"steps": []}))
    world.change(v("v8", traffic=GATEWAY, rollout={"steps": []}))
    world.reconcile()
    assert world.phase == "Canary"
    world.pods_ready()
    world.reconcile()
    assert world.phase == "Promoting"


def test_empty_steps_with_the_replicas_provider_promote_through_stables_rolling_update():
    """A canary pod behind the replicas provider's Service is client traffic,
    so with no steps there is none: stable takes the revision pod by pod
    (maxUnavailable 0), and promotion's own checks roll a bad one back."""
    world = settled_world(v("v7", rollout={"steps": []}))
    world.change(v("v8", rollout={"steps": []}))
    decision = world.reconcile()
    assert world.phase == "Promoting" and decision.canary_replicas == 0
    world.pods_ready()
    world.reconcile()
    assert world.results()[-1] == "Promoted"


def test_weighted_provider_passes_a_step_only_once_the_weight_reads_back():
    world = settled_world(v("v7", traffic=GATEWAY, rollout=STEPS_FAST))
    world.change(v("v8", traffic=GATEWAY, rollout=STEPS_FAST))
    run(world, 1)
    world.route = ALL_STABLE  # pretend the route write has not landed yet
    decision = world.reconcile()
    assert decision.weights == Weights(75, 25) and world.rollout["step"] == 0
    # The status is written after the route: it says what the route now
    # carries, not yet verified by reading it back (invariant 4).
    assert world.status["traffic"] == {"stable": 75, "canary": 25, "verified": False}
    world.reconcile()  # the route now holds 75/25 (the world applied it)
    assert world.rollout["step"] == 1
    assert world.status["traffic"] == {"stable": 75, "canary": 25, "verified": True}


def test_a_route_sends_a_canary_pod_weight_only_once_it_has_been_ready_long_enough_for_the_gateway_to_know_it():
    """Found on the real node: Traefik answered 503 "no available server" to
    11 requests when the first setWeight went to a canary pod Ready for
    under a second: the EndpointSlice controller and Traefik's reload had not
    caught up."""
    world = settled_world(v("v7", traffic=GATEWAY, rollout=STEPS_FAST))
    world.change(v("v8", traffic=GATEWAY, rollout=STEPS_FAST))
    run(world, 1, ready=False)
    world.canary.ready, world.canary.ready_since = 1, world.now
    world.later(1)
    decision = world.reconcile()
    assert decision.weights == ALL_STABLE and decision.requeue_after <= 5
    world.later(4)
    assert world.reconcile().weights == Weights(75, 25)


def test_promotion_waits_for_the_route_to_hold_all_stable_before_removing_the_canary():
    world = settled_world(v("v7", traffic=GATEWAY, rollout={"steps": [{"setWeight": 50}]}))
    world.change(v("v8", traffic=GATEWAY, rollout={"steps": [{"setWeight": 50}]}))
    run(world, 4)
    assert world.phase == "Promoting"
    world.pods_ready()
    world.route = Weights(50, 50)  # the 100/0 write has not landed
    decision = world.reconcile()
    assert decision.weights == ALL_STABLE and decision.canary_replicas == 2
    assert world.reconcile().canary_replicas is None  # read back 100/0: now the canary goes
    assert world.results()[-1] == "Promoted"


# -- pauses, approval and imperative requests ------------------------------------------


def test_open_ended_pause_waits_for_the_approved_version():
    steps = {"steps": [{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]}
    world = settled_world(v("v7", rollout=steps))
    world.change(v("v8", rollout=steps))
    run(world, 3, seconds=600)
    assert world.phase == "Paused" and "approvedVersion to v8" in world.rollout["pausedReason"]
    assert world.reconcile().requeue_after is not None
    world.change(v("v8", rollout={**steps, "approvedVersion": "v8"}))  # not a new revision
    run(world, 2)
    assert world.rollout["step"] >= 2 and world.phase != "Paused"


def test_promote_annotation_skips_the_remaining_steps_and_is_consumed():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 2)
    world.annotations[PROMOTE] = "true"
    decision = world.reconcile()
    assert decision.remove_annotations == (PROMOTE,) and PROMOTE not in world.annotations
    assert world.phase == "Promoting"


def test_requests_with_nothing_in_flight_are_consumed_and_ignored():
    world = settled_world(v("v7"))
    world.annotations.update({PROMOTE: "", ABORT: ""})
    decision = world.reconcile()
    assert set(decision.remove_annotations) == {PROMOTE, ABORT} and world.phase == "Ready"


# -- rollback ----------------------------------------------------------------------


def rolled_back_by_abort():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 3)
    world.annotations[ABORT] = "true"
    return world, world.reconcile()


def test_abort_rolls_back_at_once_and_says_so():
    world, decision = rolled_back_by_abort()
    assert decision.weights == ALL_STABLE and decision.canary_replicas is None
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "RolledBack")]
    assert world.phase == "RolledBack"
    assert world.condition("Stalled") == ("True", "RolledBack")
    assert world.condition("Ready")[0] == "False"
    assert "aborted by the modeldeploy.io/abort annotation" in world.status["message"]
    assert "serves the stable v7" in world.status["message"]
    assert world.results()[-1] == "RolledBack"
    assert world.status["stable"]["modelVersion"] == "v7" and "canary" not in world.status


def test_rolled_back_spec_is_not_retried_until_it_changes():
    world, _ = rolled_back_by_abort()
    for _ in range(3):
        decision = run(world, 1, seconds=3600).decisions[-1]
        assert decision.canary_replicas is None and decision.events == ()
    assert world.phase == "RolledBack" and world.results().count("RolledBack") == 1


def test_a_new_spec_after_a_rollback_starts_a_fresh_canary():
    world, _ = rolled_back_by_abort()
    world.change(v("v9"))
    decision = world.reconcile()
    assert [e.reason for e in decision.events] == ["CanaryStarted"]
    assert world.rollout["failedChecks"] == 0 and world.rollout["decisions"] == []
    assert world.condition("Stalled")[0] == "False" and world.phase == "Canary"


def test_setting_the_spec_back_to_stable_clears_the_failure_without_a_canary():
    world, _ = rolled_back_by_abort()
    world.change(v("v7"))
    decision = world.reconcile()
    assert decision.canary_replicas is None and decision.events == ()
    assert world.phase == "Ready" and world.condition("Stalled")[0] == "False"
    assert world.rollout["stage"] == "Stable" and "message" not in world.rollout


def test_stable_renders_the_snapshot_after_a_rollback():
    world, decision = rolled_back_by_abort()
    assert compute_revision(decision.stable_spec, TABLE) == compute_revision(v("v7"), TABLE)


def test_crash_looping_canary_rolls_back_naming_the_pod():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 2, ready=False)  # started, then sized (replicas provider)
    world.canary.crashing, world.canary.restarts = True, 4
    decision = world.reconcile()
    assert decision.canary_replicas is None and world.phase == "RolledBack"
    assert "fraud-canary-0" in world.status["message"] and "crash-looping" in world.status["message"]
    assert world.rollout["decisions"][-1]["metric"] == "crash-loop"


def test_canary_not_ready_by_the_deadline_rolls_back():
    world = settled_world(v("v7", rollout={"progressDeadlineSeconds": 120}))
    world.change(v("v8", rollout={"progressDeadlineSeconds": 120}))
    run(world, 1, seconds=100, ready=False)
    world.reconcile()
    assert world.phase == "Canary"
    world.later(21)
    world.reconcile()
    assert world.phase == "RolledBack" and "not ready within 120s" in world.status["message"]


NO_GPU = "0/8 nodes are available: 2 Insufficient nvidia.com/gpu, 6 node(s) didn't match Pod's node affinity/selector."


def test_an_unschedulable_canary_is_said_at_once_and_waited_for_until_the_deadline():
    world = settled_world(v("v7", rollout={"progressDeadlineSeconds": 120}))
    world.change(v("v8", rollout={"progressDeadlineSeconds": 120}))
    run(world, 2, ready=False)  # started, then sized (replicas provider)
    world.canary.unschedulable = NO_GPU
    world.reconcile()
    assert world.phase == "Canary"
    assert world.condition("Ready") == ("False", "InsufficientCapacity")
    assert world.status["message"].startswith(
        f"canary v8 (revision {world.canary.revision}) is waiting for room: pod fraud-canary-0 cannot be scheduled: "
        f"{NO_GPU}; it takes 0% of traffic (step 1/")
    assert (world.stable.replicas, world.stable.ready) == (4, 4)
    world.later(121)
    world.reconcile()
    assert world.phase == "RolledBack"
    assert "canary pods not ready within 120s" in world.status["message"]
    assert f"pod fraud-canary-0 cannot be scheduled: {NO_GPU[:-1]}. The cluster serves" in world.status["message"]
    assert (world.stable.replicas, world.stable.ready) == (4, 4)


def test_an_unschedulable_canary_rolls_back_at_once_when_asked_to():
    rollout = {"capacity": {"onUnschedulable": "Rollback"}}
    world = settled_world(v("v7", rollout=rollout))
    world.change(v("v8", rollout=rollout))
    run(world, 2, ready=False)
    world.canary.unschedulable = NO_GPU
    decision = world.reconcile()
    assert world.phase == "RolledBack" and decision.canary_replicas is None
    assert ("canary pod fraud-canary-0 cannot be scheduled (spec.rollout.capacity.onUnschedulable: Rollback): "
            f"{NO_GPU[:-1]}. The cluster serves the stable v7") in world.status["message"]
    assert world.rollout["decisions"][-1]["metric"] == "canary-schedulable"
    assert (world.stable.replicas, world.stable.ready) == (4, 4)


def test_a_canary_loading_its_model_says_so_and_may_take_its_load_timeout_beyond_the_deadline():
    rollout = {"progressDeadlineSeconds": 60, "steps": [{"setWeight": 50}]}
    world = settled_world(v("v7", rollout=rollout))
    world.change(v("v8", rollout=rollout))
    run(world, 2, ready=False)
    world.canary.loading_since, world.canary.load_timeout = world.now, 300
    world.reconcile()
    assert world.condition("Ready") == ("False", "LoadingModel")
    assert "is loading: pod fraud-canary-0 loading its model since" in world.status["message"]
    assert "loadTimeout 5m" in world.status["message"]
    world.later(200)  # past progressDeadlineSeconds, within loadTimeout
    world.reconcile()
    assert world.phase == "Canary"
    world.pods_ready()
    for _ in range(5):
        run(world, 1, seconds=1)
        if world.phase == "Promoting":
            break
    assert world.phase == "Promoting", world.status["message"]
    # Stable's new pods load the model as slowly: promotion, too, waits for
    # them past the deadline (it was rolled back at 60 s; found on the cluster).
    world.stable.loading_since, world.stable.load_timeout, world.stable.ready = world.now, 300, 0
    run(world, 1, seconds=200, ready=False)
    world.reconcile()
    assert world.phase == "Promoting", world.status["message"]
    world.pods_ready()
    run(world, 4, seconds=1)
    assert world.phase == "Ready" and world.status["stable"]["modelVersion"] == "v8"


def test_a_canary_that_does_not_load_within_its_load_timeout_rolls_back_saying_so():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 2, ready=False)
    world.canary.loading_since, world.canary.load_timeout = world.now, 30
    world.canary.restarts, world.canary.crashing = 3, True  # the startup probe restarted it
    world.later(31)
    world.reconcile()
    assert world.phase == "RolledBack"
    assert "canary pod fraud-canary-0 did not load its model within loadTimeout 30s" in world.status["message"]
    assert "crash" not in world.status["message"]
    assert world.rollout["decisions"][-1]["metric"] == "model-load"
    assert (world.stable.replicas, world.stable.ready) == (4, 4)


def test_rising_restarts_count_as_failed_checks():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 2)
    for restarts, expected_phase in ((1, "Canary"), (2, "Canary"), (3, "RolledBack")):
        world.canary.restarts = restarts
        world.reconcile()
        assert world.phase == expected_phase, restarts
    assert "restarted" in world.status["message"]


# -- a spec change mid-rollout ---------------------------------------------------------


def test_spec_change_mid_rollout_aborts_and_starts_over_from_stable():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 3)
    assert world.rollout["weight"] == 20
    world.change(v("v9"))
    decision = world.reconcile()
    assert [e.reason for e in decision.events] == ["Aborted", "CanaryStarted"]
    assert decision.weights == ALL_STABLE  # traffic back to stable for the new try
    assert world.results()[-1] == "Aborted" and world.status["history"][-1]["modelVersion"] == "v8"
    assert world.rollout["step"] == 0 and world.rollout["revision"] == world.revision
    assert compute_revision(decision.stable_spec, TABLE) == compute_revision(v("v7"), TABLE)


def test_spec_back_to_stable_mid_rollout_aborts_without_a_canary():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 3)
    world.change(v("v7"))
    decision = world.reconcile()
    assert decision.canary_replicas is None and world.results()[-1] == "Aborted"


def test_recreate_replaces_stable_directly():
    world = settled_world(v("v7", rollout={"strategy": "Recreate"}))
    world.change(v("v8", rollout={"strategy": "Recreate"}))
    decision = world.reconcile()
    assert decision.canary_replicas is None
    assert compute_revision(decision.stable_spec, TABLE) == world.revision


# -- analysis ----------------------------------------------------------------------------


def analysed_world(answer, **analysis):
    spec = {"steps": [{"setWeight": 20}, {"pause": {"duration": "10m"}}], "analysis": {**ANALYSIS, **analysis}}
    world = settled_world(v("v7", rollout=spec))
    world.change(v("v8", rollout=spec))
    world.analysis_answer = answer
    run(world, 3)  # started (no pod yet: replicas provider), sized, at 20%
    assert world.rollout["weight"] == 20 and world.rollout["lastAnalysisAt"]
    return world


def test_analysis_is_due_every_interval_with_templated_queries():
    asked = []

    def answer(plan):
        asked.append(plan)
        return AnalysisResults(metrics=(MetricResult("error-rate", 0.01),))

    world = analysed_world(answer)
    run(world, 1, seconds=29)
    assert asked == []
    run(world, 1, seconds=1)
    assert asked == []
    world.reconcile()
    [plan] = asked
    assert plan.address == "http://prometheus:9090"
    assert plan.metrics[0].canary == f'errors{{revision="{world.revision}"}}'
    last = world.rollout["decisions"][-1]
    assert (last["metric"], last["verdict"], last["action"], last["value"]) == ("error-rate", "Pass", "Continue", 0.01)


def test_failed_checks_beyond_the_limit_roll_back():
    world = analysed_world(lambda plan: AnalysisResults(metrics=(MetricResult("error-rate", 0.2),)))
    run(world, 1, seconds=30)
    run(world, 1, seconds=30)
    assert world.phase == "Canary" and world.rollout["failedChecks"] == 1
    run(world, 1)
    assert world.phase == "RolledBack"
    assert "error-rate" in world.status["message"] and "failureLimit 1" in world.status["message"]
    assert [d["verdict"] for d in world.rollout["decisions"]] == ["Fail", "Fail"]


@pytest.mark.parametrize("on, phase", [("Pause", "Paused"), ("Continue", "Canary"), ("Rollback", "RolledBack")])
def test_too_few_samples_is_inconclusive_never_a_pass(on, phase):
    world = analysed_world(
        lambda plan: AnalysisResults(metrics=(MetricResult("error-rate", 0.0),), samples=3),
        minSamples=100, samplesQuery="count_requests", onInconclusive=on,
    )
    run(world, 1, seconds=30)
    world.reconcile()
    assert world.phase == phase
    assert world.rollout["decisions"][-1]["verdict"] == "Inconclusive"
    assert world.rollout["decisions"][-1]["samples"] == 3


def test_an_analysis_pause_lifts_on_a_conclusive_pass():
    answers = iter([AnalysisResults(metrics=(MetricResult("error-rate", None),)),
                    AnalysisResults(metrics=(MetricResult("error-rate", 0.0),))])
    world = analysed_world(lambda plan: next(answers))
    run(world, 1, seconds=30)
    world.reconcile()
    assert world.phase == "Paused"
    world.later(30)
    world.reconcile()
    assert world.phase == "Canary"


def test_compare_to_stable_fails_when_the_canary_is_worse_by_more_than_the_bound():
    metric = {"name": "latency", "query": 'p99{rev="{{canary.revision}}",ns="{{namespace}}"}', "max": 0.1,
              "compareToStable": True}
    plans = []

    def answer(plan):
        plans.append(plan)
        return AnalysisResults(metrics=(MetricResult("latency", 0.5, stable_value=0.3),))

    world = analysed_world(answer, metrics=[metric], failureLimit=0)
    run(world, 1, seconds=30)
    world.reconcile()
    assert plans[0].metrics[0].stable == f'p99{{rev="{compute_revision(v("v7"), TABLE)}",ns="ml"}}'
    assert world.phase == "RolledBack" and "latency" in world.status["message"]


def test_no_step_passes_on_an_analysis_that_has_not_run():
    world = analysed_world(None)
    run(world, 1, seconds=30)
    inputs = world.inputs()
    held = decide(inputs)  # due, but no answers given
    assert held.state.step == inputs.state.step and held.state.last_analysis_at == inputs.state.last_analysis_at


def test_render_accepts_spaces_inside_braces():
    assert render("x{{ name }}/{{namespace}}", {"name": "fraud", "namespace": "ml"}) == "xfraud/ml"


# -- resuming from status ------------------------------------------------------------------


def test_state_read_back_from_status_is_the_state_decided():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 3)
    decision = world.decisions[-1]
    assert read_state(world.status) == replace(decision.state, decisions=tuple(decision.state.decisions))


def test_snapshot_round_trip_renders_the_same_revision():
    old, new = v("v7", tolerations=[{"key": "gpu", "operator": "Exists"}]), v("v8", autoscaling=None)
    assert compute_revision(spec_for_stable(new, take_snapshot(old)), TABLE) == compute_revision(old, TABLE)


def test_snapshot_survives_a_new_spec_that_would_reject_it():
    # Autoscaling needs a CPU request; the old pods had none. The stable role
    # must still render them.
    old = spec_for("v7", replicas=2)
    new = spec_for("v8", autoscaling={"maxReplicas": 5}, resources={"requests": {"cpu": "1"}})
    stable = spec_for_stable(new, take_snapshot(old))
    assert stable.autoscaling is not None and stable.resources.requests == {}


def test_a_rolled_back_status_without_its_reason_still_reads():
    """A status written by hand (or by an older operator) may lack the
    rollback's message: the report says so instead of failing the pass."""
    world, _ = rolled_back_by_abort()
    del world.status["rollout"]["message"]
    world.reconcile()
    assert world.phase == "RolledBack" and "no reason recorded" in world.status["message"]
