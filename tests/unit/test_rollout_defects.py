"""Issue 9's confirmed defects of the rollout machine, one named regression
test each (each failed before its fix). Driven through the simulated world of
support/rollout_world.py: every pass starts from the stored status only."""

from modeldeploy.builders import compute_revision
from modeldeploy.rollout import ABORT, PROMOTE
from modeldeploy.traffic import ALL_STABLE
from support.rollout_world import TABLE, run, settled_world, spec_for

STEPS = {"steps": [{"setWeight": 25}, {"pause": {"duration": "10s"}}, {"setWeight": 50}]}


def v(version, replicas=4, **extra):
    return spec_for(version, replicas=replicas, rollout=STEPS, **extra)



def reasons(decision):
    return [event.reason for event in decision.events]


# -- defect 2: replicas 0 ---------------------------------------------------------------


def test_defect2_scaling_to_zero_promotes_nothing():
    world = settled_world(v("v7"))
    stable = world.status["stable"]["revision"]
    world.change(v("v8", replicas=0))
    decision = world.reconcile()
    assert world.status["stable"]["revision"] == stable, "replicas: 0 must not make v8 stable"
    assert world.status["stable"]["spec"]["model"]["version"] == "v7"
    assert decision.stable_replicas == 0 and decision.canary_replicas is None
    assert compute_revision(decision.stable_spec, TABLE) == stable
    # Scaled back up, v8 goes through its canary like any other new revision.
    world.change(v("v8", replicas=4))
    assert "CanaryStarted" in reasons(world.reconcile())
    assert world.phase == "Canary"


def rolled_back_v8():
    """v7 serves; v8's canary was aborted. Returns the world and v7's revision."""
    world = settled_world(v("v7"))
    stable = world.status["stable"]["revision"]
    world.change(v("v8"))
    run(world, 2)
    world.annotations[ABORT] = "true"
    world.reconcile()
    assert world.rollout["stage"] == "RolledBack"
    return world, stable


def test_defect2_a_rolled_back_revision_stays_rolled_back_through_zero_replicas():
    world, stable = rolled_back_v8()
    world.change(v("v8", replicas=0))
    world.reconcile()
    world.change(v("v8", replicas=4))
    run(world, 3)
    assert world.status["stable"]["revision"] == stable
    assert world.rollout["stage"] == "RolledBack" and world.canary is None


def test_defect2_a_canary_in_flight_is_held_at_zero_and_walks_its_steps_again():
    world = settled_world(v("v7"))
    stable = world.status["stable"]["revision"]
    world.change(v("v8"))
    run(world, 3, seconds=11)
    assert world.rollout["weight"] > 0
    world.change(v("v8", replicas=0))
    decision = world.reconcile()
    assert decision.weights == ALL_STABLE and decision.canary_replicas is None
    assert world.status["stable"]["revision"] == stable and world.rollout["stage"] == "Canary"
    assert world.rollout["step"] == 0 and world.rollout["weight"] == 0
    world.change(v("v8", replicas=4))
    world.reconcile()
    assert world.rollout["weight"] == 0, "no weight before its canary pods are ready again"


# -- defect 9: what a promote/abort annotation targets ----------------------------------


def in_flight():
    """v8's canary taking traffic (started, sized, at its first setWeight)."""
    world = settled_world(v("v7"))
    world.change(v("v8"))
    run(world, 3)
    assert world.phase == "Canary" and world.rollout["weight"] > 0
    return world


def test_defect9_promote_false_does_not_promote():
    world = in_flight()
    world.annotations[PROMOTE] = "false"
    decision = world.reconcile()
    assert world.phase == "Canary"
    assert PROMOTE in decision.remove_annotations, "consumed all the same"
    [ignored] = [e for e in decision.events if e.reason == "RequestIgnored"]
    assert "'false'" in ignored.message


def test_defect9_a_request_naming_the_canary_revision_acts_on_it():
    world = in_flight()
    world.annotations[PROMOTE] = world.revision
    world.reconcile()
    assert world.phase == "Promoting"


def test_defect9_a_request_naming_a_superseded_canary_is_refused():
    world = in_flight()
    old_canary = world.revision
    world.change(v("v9"))
    world.reconcile()
    world.annotations[ABORT] = old_canary
    decision = world.reconcile()
    assert world.phase == "Canary" and world.status["canary"]["revision"] == world.revision
    assert any(e.reason == "RequestIgnored" and old_canary in e.message for e in decision.events)


def test_defect9_a_bare_request_arriving_with_a_new_revision_is_dropped_with_an_event():
    world = in_flight()
    world.change(v("v9"))
    world.annotations[PROMOTE] = "true"
    decision = world.reconcile()
    assert world.phase == "Canary", "the promote was meant for v8, not for v9 it has not seen"
    assert "CanaryStarted" in reasons(decision)
    [ignored] = [e for e in decision.events if e.reason == "RequestIgnored"]
    assert "new revision" in ignored.message and PROMOTE in decision.remove_annotations


# -- defect 6: ready pods are counted by revision -------------------------------------


def test_defect6_pods_of_a_superseded_canary_never_earn_the_new_canary_weight():
    world = in_flight()
    assert world.canary.ready >= 1
    world.change(v("v9"))
    # The canary Deployment is re-templated, but its old (v8) pods are still
    # there and ready, as during a rolling update: the Deployment counts them.
    world.canary.revision = world.revision  # the Deployment's template (and label) is v9's
    old_pods = world.canary.pods
    world.canary.pods = lambda role: [p.__class__(**{**p.__dict__, "revision": "superseded"}) for p in old_pods(role)]
    for _ in range(3):
        decision = world.reconcile()
        assert decision.weights == ALL_STABLE, "weight went to the aborted revision's pods"


def test_defect6_with_no_steps_a_never_ready_revision_is_not_promoted():
    gateway = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
    world = settled_world(spec_for("v7", replicas=2, traffic=gateway, rollout={"steps": []}))
    world.change(spec_for("v8", replicas=2, traffic=gateway, rollout={"steps": []}))
    world.reconcile()
    world.canary.ready = world.canary.replicas  # the Deployment says ready...
    world.canary.pods = lambda role: []  # ...but no pod of the revision is
    world.reconcile()
    assert world.phase == "Canary"


# -- defect 7: promotion has checks and a deadline --------------------------------------


def promoting():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    for _ in range(10):
        world.reconcile()
        if world.phase == "Promoting":
            return world  # the new stable pods are not ready yet
        world.pods_ready()
        world.later(11)
    raise AssertionError(world.rollout)


def test_defect7_a_promoted_revision_that_crashes_rolls_back():
    world = promoting()
    stable = world.status["stable"]["revision"]
    world.stable.crashing, world.stable.restarts = True, 4
    world.reconcile()
    assert world.rollout["stage"] == "RolledBack" and "while promoting" in world.rollout["message"]
    assert world.status["stable"]["revision"] == stable
    assert world.results()[-1] == "RolledBack"


def test_defect7_a_promotion_that_never_completes_rolls_back_at_the_deadline():
    world = promoting()
    world.later(599)
    world.reconcile()
    assert world.phase == "Promoting"
    world.later(2)
    world.reconcile()
    assert world.rollout["stage"] == "RolledBack"
    assert "promotion not complete within 600s" in world.rollout["message"]


# -- defect 13: the replicas provider and whole pods ------------------------------------


def test_defect13_no_canary_pod_takes_client_traffic_before_the_first_set_weight():
    steps = {"steps": [{"pause": {"duration": "30s"}}, {"setWeight": 20}]}
    world = settled_world(spec_for("v7", replicas=4, rollout=steps))
    world.change(spec_for("v8", replicas=4, rollout=steps))
    decision = world.reconcile()
    assert world.phase == "Canary" and decision.canary_replicas == 0
    world.pods_ready()
    world.later(29)
    assert world.reconcile().canary_replicas == 0
    world.later(2)
    assert world.reconcile().canary_replicas == 1  # the first setWeight: one of five pods is 20%


def test_defect13_a_weight_whole_pods_cannot_give_is_rounded_and_the_status_says_so():
    steps = {"steps": [{"setWeight": 1}, {"pause": {}}]}
    world = settled_world(spec_for("v7", replicas=4, rollout=steps))
    world.change(spec_for("v8", replicas=4, rollout=steps))
    run(world, 3)
    assert world.rollout["weight"] == 1
    assert world.status["traffic"]["canary"] == 20, "what the Service really sends: 1 pod of 5"
    assert "setWeight 1 rounds to 20%" in world.status["message"]


def test_defect13_replicas_provider_sizes_the_canary_for_the_share_it_should_take():
    from modeldeploy.rollout.sizing import canary_replicas, split_weight

    for base, weight, pods in [(4, 0, 0), (4, 20, 1), (4, 25, 1), (4, 50, 4), (4, 100, 4), (10, 10, 1),
                               (10, 33, 5), (3, 1, 1)]:
        assert canary_replicas(base, weight, weighted=False) == pods, (base, weight)
    assert split_weight(4, 1) == 20 and split_weight(10, 5) == 33
    assert canary_replicas(4, 0) == 1, "weighted providers keep one pod warm at 0%: it is checked before traffic"


# -- defect 4: an HPA and a canary ------------------------------------------------------


def autoscaled(version):
    return spec_for(version, autoscaling={"minReplicas": 2, "maxReplicas": 10},
                    resources={"requests": {"cpu": "1"}}, rollout=STEPS)


def test_defect4_under_an_hpa_stable_keeps_its_count_through_a_canary():
    world = settled_world(autoscaled("v7"))
    world.stable.replicas = world.stable.ready = 6  # the HPA scaled stable to 6 for the load
    world.change(autoscaled("v8"))
    started = world.reconcile()
    assert started.autoscaler_floor == 6, "the HPA may not shrink stable while traffic moves away"
    world.pods_ready()
    world.stable.replicas = world.stable.ready = 2  # what the HPA would do, seeing stable's CPU fall
    decision = world.reconcile()
    assert decision.autoscaler_floor == 6
    assert decision.canary_replicas == 2, "25% of the 6 pods that served, not of what the HPA shrank to"
    assert world.rollout["stableFloor"] == 6  # kept in status: survives a restart
    for _ in range(8):
        world.reconcile()
        world.pods_ready()
        world.later(11)
    assert world.results()[-1] == "Promoted"
    assert world.reconcile().autoscaler_floor is None, "the floor ends with the canary"


# -- found by the stateful property test (test_rollout_safety.py) -----------------------
# Each is the shrunk action list the property test printed, reduced to the
# machine; each failed before its fix.


def test_found_a_superseded_canary_s_ready_pods_are_not_reported_as_traffic():
    """Invariant 4 (replicas provider): when a new version supersedes a canary
    that takes traffic, the canary Deployment is re-templated and Recreate
    removes the old pods; the status must not report their share, even while
    the Deployment's readyReplicas still counts them."""
    world = in_flight()
    assert world.status["traffic"]["canary"] > 0
    world.change(v("v9"))
    world.canary.revision = world.revision  # re-templated for v9...
    old_pods = world.canary.pods  # ...its v8 pods still ready, counted in readyReplicas
    world.canary.pods = lambda role: [p.__class__(**{**p.__dict__, "revision": "superseded"}) for p in old_pods(role)]
    world.reconcile()
    assert world.status["traffic"]["canary"] == 0, world.status["traffic"]


def test_found_a_route_recreated_by_a_provider_switch_gets_weight_only_for_ready_canary_pods():
    """Invariant 3: a canary at 50% under the replicas provider whose pods
    stopped being ready; the user switches to gatewayAPI. The new route must
    not send 50% to a canary with no ready pod."""
    gateway = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
    world = in_flight()
    assert world.rollout["weight"] > 0
    world.canary.ready = 0
    world.route = None  # no route yet: the replicas provider wrote none
    world.change(spec_for("v8", replicas=4, rollout=STEPS, traffic=gateway))
    decision = world.reconcile()
    assert decision.weights == ALL_STABLE, decision.weights
    world.pods_ready()
    decision = world.reconcile()
    assert decision.weights.canary == world.rollout["weight"], "ready again: the rollout's weight comes back"


def test_found_switching_to_recreate_does_not_make_a_rolled_back_revision_stable():
    """Invariant 2: v8 was rolled back; the user sets strategy: Recreate
    without changing the version. v8 stays rolled back; stable keeps serving."""
    world, stable = rolled_back_v8()
    world.change(spec_for("v8", replicas=4, rollout={**STEPS, "strategy": "Recreate"}))
    run(world, 2)
    assert world.status["stable"]["revision"] == stable
    assert world.rollout["stage"] == "RolledBack"


def test_found_an_abort_read_with_a_switch_to_recreate_is_not_overruled():
    """Invariant 2: the user aborts the canary in flight and, before the next
    pass, sets strategy: Recreate with the same version. The abort wins: the
    revision is barred, not made stable."""
    world = settled_world(v("v7"))
    stable = world.status["stable"]["revision"]
    world.change(v("v8"))
    run(world, 2)
    assert world.phase == "Canary"
    world.annotations[ABORT] = "true"
    world.change(spec_for("v8", replicas=4, rollout={**STEPS, "strategy": "Recreate"}))
    run(world, 2)
    assert world.status["stable"]["revision"] == stable
    assert world.rollout["stage"] == "RolledBack"


def test_found_an_abort_at_zero_replicas_is_carried_out_not_consumed_silently():
    """Invariant 2: the user aborts the canary and scales to 0 before the next
    pass; the abort annotation was consumed while the canary was held, and a
    later switch to Recreate made the aborted revision stable."""
    world = in_flight()
    stable = world.status["stable"]["revision"]
    world.annotations[ABORT] = "true"
    world.change(v("v8", replicas=0))
    world.reconcile()
    assert world.rollout["stage"] == "RolledBack" and ABORT not in world.annotations
    world.change(spec_for("v8", replicas=4, rollout={**STEPS, "strategy": "Recreate"}))
    run(world, 2)
    assert world.status["stable"]["revision"] == stable and world.rollout["stage"] == "RolledBack"


def test_found_a_canary_held_at_zero_replicas_says_so_and_a_promote_is_refused_aloud():
    """Invariant 6: a canary held while scaled to 0 waits for the user (as an
    open pause does) and the status says what for; a promote request then has
    nothing to prove the revision on: refused with an Event, not lost."""
    world = in_flight()
    world.change(v("v8", replicas=0))
    world.reconcile()
    assert world.rollout["stage"] == "Canary" and "scaled to 0" in world.rollout["pausedReason"]
    assert "scaled to 0" in world.status["message"], world.status["message"]
    world.annotations[PROMOTE] = "true"
    decision = world.reconcile()
    assert "RequestIgnored" in reasons(decision) and world.rollout["stage"] == "Canary"
    assert PROMOTE not in world.annotations


def test_after_a_restart_a_route_missing_from_the_cache_keeps_the_rollouts_weight():
    """The clamp above must not flap live traffic: right after an operator
    restart the watch caches fill in any order, so a pass can see neither the
    route nor a single canary pod. It writes the rollout's weight (the live
    route already carries it), not 0. (A kill mid-rollout on the control
    plane, tests/integration/test_restart.py, saw the route go to 0.)"""
    gateway = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
    world = settled_world(spec_for("v7", replicas=4, rollout=STEPS, traffic=gateway))
    world.change(spec_for("v8", replicas=4, rollout=STEPS, traffic=gateway))
    run(world, 3)
    weight = world.rollout["weight"]
    assert weight > 0
    world.route = None  # not in the cache yet...
    world.canary.pods = lambda role: []  # ...nor any pod
    decision = world.reconcile()
    assert decision.weights.canary == weight, decision.weights


def test_a_route_to_a_canary_whose_deployment_is_gone_carries_nothing_until_its_pods_are_ready():
    """The restart allowance above trusts the canary Deployment's ready count
    while no pod is cached, never a Deployment that is not there. Found by the
    property test at 2,000 examples: a pass at replicas 0 pruned the canary
    Deployment but lost its status write, so the recorded rollout still said
    50%; scaled back up under gatewayAPI, the new route sent 50% to a canary
    with no pod at all (invariant 3)."""
    gateway = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
    world = settled_world(spec_for("v7", replicas=4, rollout=STEPS, traffic=gateway))
    world.change(spec_for("v8", replicas=4, rollout=STEPS, traffic=gateway))
    run(world, 3)
    assert world.rollout["weight"] > 0
    world.route = None  # a new route (the provider was switched)...
    world.canary = None  # ...and no canary Deployment, so no pod either
    decision = world.reconcile()
    assert decision.weights.canary == 0, decision.weights
    assert decision.canary_replicas >= 1, "the canary is re-created to earn its weight back"


def test_found_a_canary_whose_start_was_never_recorded_takes_no_client_traffic():
    """Invariant 3, found by the property test at 2,000 examples: the pass
    that started a canary under the replicas provider sized it for its first
    setWeight and lost its status write; the user then broke the spec, which
    holds everything, and the canary's pods took half the traffic while the
    recorded rollout said none was in flight. A canary is now sized only by a
    pass that read a status naming it: however often the start is lost, the
    canary has no pod."""
    world = settled_world(v("v7"))
    recorded = world.status
    world.change(v("v8"))
    for _ in range(3):  # each pass's status write lost
        decision = world.reconcile()
        assert "CanaryStarted" in reasons(decision) and decision.canary_replicas == 0
        world.pods_ready()
        world.status = recorded
    assert world.canary.ready == 0
    run(world, 3)  # recorded now; then sized and ready; then at its first setWeight
    assert world.rollout["weight"] == 25 and world.canary.ready == 1


def test_after_a_restart_the_replicas_split_is_not_reported_0_before_the_pods_are_cached():
    """Counting canary pods by revision (above) needs the pods in the cache;
    until the pod watch has delivered any, the status counts the canary
    Deployment's ready pods rather than report 0% for a canary that serves."""
    world = in_flight()
    serving = world.status["traffic"]["canary"]
    assert serving > 0
    world.canary.pods = lambda role: []
    world.reconcile()
    assert world.status["traffic"]["canary"] == serving, world.status["traffic"]


def test_found_a_pass_from_a_stale_cache_sets_the_provider_in_effect():
    """The property test's own actions (its invariant 3 failed, as the test
    kept its books): the user switches to the replicas provider, a pass from
    a stale cache writes the client Service for it (the spec is read as it
    is), and the next pass is refused (422). The test took the provider in
    effect to be the one before the switch, as it counted only fresh passes."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.abort_with_a_lost_status_write(code=409, then_wait=False, value="true")
    state.supersede_canary_while_its_pods_are_ready(provider="gatewayAPI")
    state.switch_provider(provider="replicas")
    state.restart_with_stale_cache(passes_ago=1)
    state.edit_image(image="registry.example.com/mlserver:1.7.2")
    state.api_server_refuses_this_version()
    state.teardown()


def test_found_a_pass_from_a_stale_cache_sets_the_steps_in_effect():
    """The property test"s own actions (its invariant 3 failed): new steps
    (an approval pause first) acted on by a pass from a stale cache; the
    test judged the canary"s pod at 0% against the steps before."""
    from test_rollout_safety_second_half import RolloutSafetySecondHalf

    state = RolloutSafetySecondHalf()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.status_write_fails(code=409)
    state.abort_with_a_lost_status_write(code=409, then_wait=False, value="true")
    state.edit_steps(steps="pause-first")
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=0, on_inconclusive="Pause", rounds=1)
    state.edit_version(version="v2")
    state.restart_with_stale_cache(passes_ago=1)
    state.edit_steps(steps="approval")
    state.controllers_progress()
    state.restart_with_stale_cache(passes_ago=1)
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=0, on_inconclusive="Pause", rounds=1)
    state.teardown()


def test_found_zero_replicas_then_a_refused_pass_takes_no_ready_stable_pod():
    """The property test's actions (invariant 5, mode Surge, failed at random
    in CI): the user scales to 0, a pass writes that, and before the
    Deployment controller acts the user turns on autoscaling (min 2); the next
    pass is refused (422)."""
    from test_rollout_safety_second_half import RolloutSafetySecondHalf

    state = RolloutSafetySecondHalf()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.abort_with_a_lost_status_write(code=409, then_wait=False, value="true")
    state.edit_replicas(replicas=0)
    state.reconcile_before_controllers_react()
    state.edit_autoscaling(extra=0, min_replicas=2)
    state.api_server_refuses_this_version()
    state.teardown()


def test_found_a_pass_from_a_stale_cache_that_acts_replaces_what_a_lost_status_write_decided():
    """The property test's own bookkeeping (invariant 3, replicas provider, at
    3,000 examples): an abort's status write is lost (the canary removed, the
    status still says Canary at 50%), the user takes the abort back, and a
    pass from a stale cache re-creates the canary as the stored status says.
    The test still judged the pods by the lost write's RolledBack."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.pods_behave(behaviour="ready", version="v1")
    state.controllers_progress()
    state.prometheus_stays_unreachable_for(answer="unreachable", rounds=1, then_wait=False)
    state.annotate_abort(value="true")
    state.status_write_fails(code=409)
    state.annotate_abort(value="false")
    state.fix_spec()
    state.restart_with_stale_cache(passes_ago=1)
    state.operator_down_while_time_passes(seconds=5)
    state.teardown()


def test_found_a_new_revision_with_no_steps_is_not_promoted_before_its_canary_was_recorded():
    """Invariant 3 (replicas provider), found by the property test at 3,000
    examples: with `steps: []` the first pass that saw a new revision started
    its promotion at once and re-templated the canary Deployment, still at the
    previous canary's size, with it; that pass's status write was lost, and
    the new revision's pods took client traffic while the stored status named
    the previous canary (a spec broken next held it so). With the replicas
    provider a canary pod is client traffic: the new revision's canary, and
    its promotion, come with the next pass, once the status names it."""
    from test_rollout_safety_second_half import RolloutSafetySecondHalf

    state = RolloutSafetySecondHalf()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.canary_gets_traffic_then_prometheus_answers(answer="NaN", min_samples=0, on_inconclusive="Pause", rounds=1)
    state.promote_then_promoted_pods_crash(crash_after=0, then_wait=False, value="true")
    state.prometheus_stays_unreachable_for(answer="unreachable", rounds=1, then_wait=False)
    state.api_server_refuses_this_version()
    state.api_server_refuses_this_version()
    state.edit_steps(steps="no-steps")
    state.edit_version(version="v2")
    state.status_write_fails(code=409)
    state.break_spec(how="reserved-env")
    state.api_server_refuses_this_version()
    state.teardown()


def test_found_a_canary_pod_at_its_promotion_gate_waiting_for_a_pre_promotion_check_may_serve():
    """Invariant 3 was too strict (the property test, once smoke checks met capacity
    mode Replace): the user promotes, which skips the steps; a PrePromotion check
    then holds the canary at its promotion gate, where mode Replace keeps a canary
    pod to promote in place and the check needs one. With the replicas provider that
    pod serves: what the promotion the user asked for does next, not traffic before
    the first setWeight."""
    from test_rollout_safety_second_half import RolloutSafetySecondHalf

    state = RolloutSafetySecondHalf()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.annotate_promote(value="true")
    state.edit_replicas(replicas=4)
    state.load_asks_hpa_for(replicas=1)
    state.set_capacity(capacity="Replace-surge")
    state.canary_gets_traffic_then_prometheus_answers(answer="pass", min_samples=0, on_inconclusive="Pause", rounds=2)
    state.abort_with_a_lost_status_write(code=409, then_wait=True, value="true")
    state.api_server_refuses_this_version()
    state.api_server_refuses_this_version()
    state.api_server_refuses_this_version()
    state.set_checks(checks=None)
    state.abort_with_a_lost_status_write(code=409, then_wait=True, value="true")
    state.set_checks(checks="pre-promotion")
    state.set_canary_headers(on=True)
    state.promote_then_promoted_pods_crash(crash_after=0, then_wait=True, value="true")
    state.node_capacity(pods=3)
    state.prometheus_answers(answer="pass")
    state.edit_image(image="registry.example.com/mlserver:1.7.2")
    state.prometheus_stays_unreachable_for(answer="unreachable", rounds=3, then_wait=True)
    state.status_write_fails(code=409)
    state.promote_then_promoted_pods_crash(crash_after=0, then_wait=True, value="true")
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=0, on_inconclusive="Pause", rounds=1)
    state.edit_image(image=None)
    state.status_write_fails(code=409)
    state.node_capacity(pods=3)
    state.annotate_promote(value="true")
    state.edit_image(image="registry.example.com/mlserver:1.7.2")
    state.promote_then_promoted_pods_crash(crash_after=0, then_wait=False, value="true")
    state.teardown()


def test_found_a_canary_that_served_under_the_replicas_provider_was_exposed_before_a_check_came():
    """Invariant 12 was too strict (the test's books): a canary's pods served
    behind the replicas provider's Service; the user then added a PreRollout
    check and switched to a route, which carried the canary's weight on. The
    test counted only a route's weight as exposure, so it took the route's
    50% for the canary's first client traffic, before its check."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.supersede_canary_while_its_pods_are_ready(provider=None)
    state.set_checks(checks="pre-rollout")
    state.switch_provider(provider="gatewayAPI")
    state.reconcile()
    state.teardown()



def test_found_a_recreated_canary_gets_copies_only_once_its_pods_are_ready():
    """Invariant 3 for shadow copies: a canary mirrored at 50% lost its
    Deployment (the user switched the strategy to Recreate and back, the
    status write in between lost), so the next pass re-created it with no
    ready pod while the status still said 50% copies. The route was written
    mirroring 50% to a backend with no endpoint: the mirror, like a weight,
    is raised back only once the canary"s ready pods can take it."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.blue_green_rollout(auto_promote=False, provider="gatewayAPI", then="approve")
    state.controllers_progress()
    state.set_capacity(capacity="Replace-surge")
    state.edit_version(version="v1")
    state.fix_spec()
    state.controllers_progress()
    state.canary_runs_a_check_that_ends(checks="pre-promotion", outcome="Complete", promote=False, provider="gatewayAPI", then_wait=False)
    state.edit_steps(steps="approval")
    state.edit_steps(steps="shadow")
    state.controllers_progress()
    state.prometheus_stays_unreachable_for(answer="unreachable", rounds=4, then_wait=True)
    state.promote_then_promoted_pods_crash(crash_after=0, then_wait=True, value="true")
    state.set_strategy(auto_promote=False, strategy="Recreate")
    state.status_write_fails(code=409)
    state.promote_then_promoted_pods_crash(crash_after=0, then_wait=False, value="true")
    state.reconcile()
    state.teardown()
