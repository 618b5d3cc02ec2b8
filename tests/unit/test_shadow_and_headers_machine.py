"""Issue 12: shadow steps (setMirror) and header-routed canaries, through the
pure machine (support/rollout_world.py: every pass starts from the stored
status only) and the providers' routes."""

import pytest

from modeldeploy.api import InvalidSpec, parse_spec
from modeldeploy.builders import Owner
from modeldeploy.rollout import ABORT, AnalysisResults, MetricResult
from modeldeploy.status import Observed
from modeldeploy.traffic import ALL_STABLE, Weights, provider_named
from support.golden import assert_matches_golden
from support.rollout_world import TABLE, run, settled_world, spec_for

GATEWAY = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
ISTIO = {"provider": "istio", "istio": {"hosts": ["fraud.example.com"]}}
HEADERS = [{"name": "x-model-canary", "value": "true"}]
SHADOW = {"steps": [{"setMirror": {"percent": 20}}, {"pause": {"duration": "60s"}}, {"setWeight": 50},
                    {"pause": {"duration": "10s"}}]}
ANALYSIS = {
    "interval": "30s",
    "failureLimit": 0,
    "prometheus": {"address": "http://prometheus:9090"},
    "metrics": [{"name": "error-rate", "query": 'errors{revision="{{canary.revision}}"}', "max": 0.05}],
}
OWNER = Owner(name="fraud", namespace="ml", uid="0b7e6a4c-1111-4222-8333-944455556666")


def v(version, traffic=GATEWAY, rollout=SHADOW, replicas=4, **extra):
    return spec_for(version, replicas=replicas, traffic=traffic, rollout=rollout, **extra)


def shadowing(**world_settings):
    world = settled_world(v("v7"))
    for name, value in world_settings.items():
        setattr(world, name, value)
    world.change(v("v8"))
    return world


# -- shadow steps ---------------------------------------------------------------


def test_a_shadow_step_copies_requests_only_once_the_canary_can_take_them():
    world = shadowing()
    decision = world.reconcile()  # the canary starts: no pod is ready yet
    assert decision.mirror == 0 and world.mirror == 0 and world.rollout["step"] == 0
    world.pods_ready()
    decision = world.reconcile()
    assert decision.mirror == 20 and decision.weights == ALL_STABLE, "a copy, no client traffic"
    assert world.status["traffic"]["mirror"] == 20 and world.status["traffic"]["canary"] == 0
    assert world.rollout["step"] == 0, "the step passes once the route reads back"
    assert "a copy of 20% of the requests" in world.condition_message("Reconciling")
    world.reconcile()
    assert world.rollout["step"] == 1 and world.rollout["mirror"] == 20


def test_a_shadow_step_sizes_the_canary_for_the_copies():
    world = shadowing()
    decision = world.reconcile()
    assert decision.canary_replicas == 1  # 20% of 4 pods
    world.change(v("v8", rollout={"steps": [{"setMirror": {"percent": 100}}, {"pause": {}}]}))
    world.pods_ready()
    assert world.reconcile().canary_replicas == 4, "a copy of every request needs stable's count"


def test_the_mirror_holds_through_later_steps_and_ends_with_promotion():
    world = shadowing()
    run(world, 3)
    assert world.rollout["step"] == 1
    world.later(61)
    run(world, 3, seconds=11)
    assert world.status["traffic"]["canary"] == 50 and world.status["traffic"]["mirror"] == 20
    run(world, 5, seconds=11)
    assert world.results()[-1] == "Promoted", world.rollout
    assert world.mirror == 0 and "mirror" not in world.status["traffic"]
    assert "mirror" not in world.rollout


def test_a_later_set_mirror_0_stops_the_copies():
    world = settled_world(v("v7"))
    world.change(v("v8", rollout={"steps": [{"setMirror": {"percent": 30}}, {"setMirror": {"percent": 0}},
                                            {"pause": {}}]}))
    run(world, 5)
    assert world.rollout["step"] == 2 and world.mirror == 0
    assert "mirror" not in world.status["traffic"]


def test_analysis_judges_the_canary_on_shadow_requests_and_rolls_back_before_any_user_sees_it():
    asked = []

    def failing(plan):
        asked.append(plan)
        return AnalysisResults(metrics=(MetricResult("error-rate", 0.3),))

    spec = {**SHADOW, "analysis": ANALYSIS}
    world = settled_world(v("v7", rollout=spec))
    world.change(v("v8", rollout=spec))
    world.analysis_answer = failing
    run(world, 3)
    assert world.rollout["lastAnalysisAt"], "the analysis clock starts with the copies"
    assert max(w.canary for w, _, _ in world.passes) == 0
    run(world, 1, seconds=31)
    world.reconcile()
    assert asked, "analysis ran at 0% weight"
    assert world.results()[-1] == "RolledBack"
    assert max(w.canary for w, _, _ in world.passes) == 0, "no user request ever reached the canary"
    assert world.mirror == 0 and world.canary is None


def test_an_abort_during_shadow_stops_the_copies_with_the_canary():
    world = shadowing()
    run(world, 3)
    assert world.mirror == 20
    world.annotations[ABORT] = "true"
    decision = world.reconcile()
    assert decision.mirror == 0 and decision.canary_replicas is None


def test_a_route_that_keeps_no_percentage_mirrors_everything_and_the_status_says_so():
    world = shadowing(keeps_mirror_percent=False)
    run(world, 2)  # started; then the copies written at 20% (the field dropped: everything copied)
    assert world.mirror == 100
    decision = world.reconcile()
    assert decision.mirror == 100, "written as it reads back, so the route is not rewritten every pass"
    assert world.status["traffic"]["mirror"] == 100
    assert "the whole stream is copied" in world.condition_message("Reconciling")
    assert "the whole stream is copied" in world.condition_message("Ready"), "where kubectl wait and users look"
    world.reconcile()
    assert world.rollout["step"] == 1, "the copies run: the step passes"


def test_set_mirror_with_the_replicas_provider_is_refused_with_the_reason():
    with pytest.raises(InvalidSpec, match="a Service sends each request to one pod"):
        parse_spec({"model": {"uri": "s3://m/v1", "version": "v1", "format": "sklearn"},
                    "rollout": {"steps": [{"setMirror": {"percent": 10}}]}},
                   known_formats=TABLE.known_formats, name="fraud")


def test_a_step_sets_one_action():
    with pytest.raises(InvalidSpec, match="exactly one of setWeight, setMirror or pause"):
        v("v1", rollout={"steps": [{"setMirror": {"percent": 10}, "setWeight": 10}]})


# -- header-routed canaries -------------------------------------------------------


def test_header_requests_reach_the_canary_at_0_percent_once_a_canary_pod_is_ready():
    steps = {"steps": [{"pause": {}}, {"setWeight": 50}]}
    world = settled_world(v("v7", rollout=steps, traffic={**GATEWAY, "canaryHeaders": HEADERS}))
    assert world.status["traffic"]["headersToCanary"] is False
    world.change(v("v8", rollout=steps, traffic={**GATEWAY, "canaryHeaders": HEADERS}))
    decision = world.reconcile()
    assert decision.headers_to_canary is False, "no canary pod is ready: header requests stay on stable"
    world.pods_ready()
    decision = world.reconcile()
    assert decision.headers_to_canary is True and decision.weights == ALL_STABLE
    assert world.status["traffic"]["headersToCanary"] is True


def test_header_requests_go_back_to_stable_when_the_canary_is_rolled_back():
    world = settled_world(v("v7", rollout={"steps": [{"pause": {}}]}, traffic={**GATEWAY, "canaryHeaders": HEADERS}))
    world.change(v("v8", rollout={"steps": [{"pause": {}}]}, traffic={**GATEWAY, "canaryHeaders": HEADERS}))
    run(world, 2)
    assert world.headers_to_canary
    world.annotations[ABORT] = "true"
    assert world.reconcile().headers_to_canary is False


def test_header_requests_leave_a_canary_whose_pods_all_stopped_being_ready():
    world = settled_world(v("v7", rollout={"steps": [{"pause": {}}]}, traffic={**GATEWAY, "canaryHeaders": HEADERS}))
    world.change(v("v8", rollout={"steps": [{"pause": {}}]}, traffic={**GATEWAY, "canaryHeaders": HEADERS}))
    run(world, 2)
    world.canary.ready = 0
    assert world.reconcile().headers_to_canary is False


def test_canary_headers_with_the_replicas_provider_are_refused_with_the_reason():
    with pytest.raises(InvalidSpec, match="cannot route by header"):
        spec_for("v1", traffic={"canaryHeaders": HEADERS})


def test_a_regular_expression_that_does_not_compile_is_refused():
    with pytest.raises(InvalidSpec, match="not a regular expression"):
        v("v1", traffic={**GATEWAY, "canaryHeaders": [{"name": "x-team", "value": "(ml", "type": "RegularExpression"}]})


# -- the routes -------------------------------------------------------------------


def route_spec(traffic):
    return v("v8", traffic={**traffic, "canaryHeaders": [*HEADERS, {"name": "x-team", "value": "ml-.*",
                                                                     "type": "RegularExpression"}]})


@pytest.mark.parametrize("case, traffic", [("route-gateway-api-shadow-headers", GATEWAY),
                                           ("route-istio-shadow-headers", ISTIO)])
def test_route_shape_with_canary_headers_and_a_mirror(case, traffic):
    spec = route_spec(traffic)
    routes = provider_named(traffic["provider"]).build_routes(OWNER, spec, Weights.to_canary(10), mirror=20,
                                                              headers_to_canary=True)
    assert_matches_golden(case, routes)


def as_live(routes):
    return {(m["kind"], m["metadata"]["name"]): m for m in routes}


@pytest.mark.parametrize("traffic", [GATEWAY, ISTIO])
@pytest.mark.parametrize("mirror", [0, 1, 20, 100])
@pytest.mark.parametrize("headers_to_canary", [False, True])
def test_weights_and_mirror_read_back_as_written_whatever_the_header_rule(traffic, mirror, headers_to_canary):
    provider = provider_named(traffic["provider"])
    routes = provider.build_routes(OWNER, route_spec(traffic), Weights.to_canary(30), mirror=mirror,
                                   headers_to_canary=headers_to_canary)
    assert provider.read_weights(OWNER, as_live(routes), Observed()) == Weights.to_canary(30)
    assert provider.read_mirror(OWNER, as_live(routes)) == mirror


def test_the_weighted_rule_is_found_after_the_api_server_gives_it_a_path_match():
    provider = provider_named("gatewayAPI")
    [route] = provider.build_routes(OWNER, route_spec(GATEWAY), Weights.to_canary(30), mirror=20)
    route["spec"]["rules"][1]["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert provider.read_weights(OWNER, as_live([route]), Observed()) == Weights.to_canary(30)


def test_a_mirror_filter_without_a_percentage_reads_as_every_request():
    provider = provider_named("gatewayAPI")
    [route] = provider.build_routes(OWNER, route_spec(GATEWAY), ALL_STABLE, mirror=20)
    del route["spec"]["rules"][1]["filters"][0]["requestMirror"]["percent"]
    assert provider.read_mirror(OWNER, as_live([route])) == 100
    route["spec"]["rules"][1]["filters"][0]["requestMirror"]["fraction"] = {"numerator": 1, "denominator": 4}
    assert provider.read_mirror(OWNER, as_live([route])) == 25


def test_header_requests_go_to_stable_by_the_same_rule_when_no_canary_is_ready():
    """Starting and ending a canary changes numbers, not the route's shape."""
    provider = provider_named("gatewayAPI")
    [to_canary] = provider.build_routes(OWNER, route_spec(GATEWAY), ALL_STABLE, headers_to_canary=True)
    [to_stable] = provider.build_routes(OWNER, route_spec(GATEWAY), ALL_STABLE, headers_to_canary=False)
    [header_rule, _] = to_stable["spec"]["rules"]
    assert [(ref["name"], ref["weight"]) for ref in header_rule["backendRefs"]] == [
        ("fraud-stable", 100), ("fraud-canary", 0)]
    assert to_canary["spec"]["rules"][0]["backendRefs"][1]["weight"] == 100
    assert to_canary["spec"]["rules"][0]["matches"] == header_rule["matches"]


# -- found by the property test ---------------------------------------------------


@pytest.mark.parametrize("traffic", [GATEWAY, ISTIO])
def test_found_a_mirror_taken_off_the_route_is_written(traffic):
    """Invariant 3 (issue 12's stages in the stateful property test): a route
    is a list of rules the API server replaces whole, but the write check
    compared its items by containment, so the rule with the mirror filter
    still 'held' the rule without it and the copies ran on into the
    promotion. Any edit inside such a list must be written."""
    from modeldeploy.reconcile.drift import needs_apply

    provider = provider_named(traffic["provider"])
    spec = v("v8", traffic=traffic)
    [mirrored] = provider.build_routes(OWNER, spec, ALL_STABLE, mirror=50)
    [plain] = provider.build_routes(OWNER, spec, ALL_STABLE)
    assert needs_apply(plain, mirrored)
    assert not needs_apply(plain, plain)


def test_found_a_parent_ref_s_section_taken_off_the_route_is_written():
    """The same for a field the user removes inside a parentRef."""
    from modeldeploy.reconcile.drift import needs_apply

    provider = provider_named("gatewayAPI")
    with_section = {**GATEWAY, "gatewayAPI": {"parentRefs": [{"name": "public", "sectionName": "https"}]}}
    [before] = provider.build_routes(OWNER, v("v8", traffic=with_section), ALL_STABLE)
    [after] = provider.build_routes(OWNER, v("v8", traffic=GATEWAY), ALL_STABLE)
    assert needs_apply(after, before)


@pytest.mark.parametrize("traffic", [GATEWAY, ISTIO])
@pytest.mark.parametrize("to_canary", [False, True])
def test_where_header_requests_go_reads_back_as_written(traffic, to_canary):
    provider = provider_named(traffic["provider"])
    routes = provider.build_routes(OWNER, route_spec(traffic), Weights.to_canary(30), headers_to_canary=to_canary)
    assert provider.read_headers_to_canary(OWNER, as_live(routes)) is to_canary
    plain = provider.build_routes(OWNER, v("v8", traffic=traffic), Weights.to_canary(30))
    assert provider.read_headers_to_canary(OWNER, as_live(plain)) is None


def test_found_a_held_pass_says_where_header_requests_go():
    """Invariant 4, found by the property test: a pass refused by the API
    server (422) holds everything and reads the split back from the route;
    it left out where requests with the canary headers go."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.set_canary_headers(on=True)
    state.supersede_canary_while_its_pods_are_ready(provider="gatewayAPI")
    state.annotate_promote(value="true")
    state.api_server_refuses_this_version()
    state.teardown()


def test_a_canary_that_sees_only_copies_is_in_phase_shadow_and_the_metrics_say_so():
    from modeldeploy import metrics

    world = shadowing()
    run(world, 2)
    assert world.phase == "Shadow"
    metrics.track_model("ml", "fraud", world.status)
    assert metrics.MIRROR_PERCENT.labels("ml", "fraud")._value.get() == 20
    assert metrics.PHASE.labels("ml", "fraud", "Shadow")._value.get() == 1
    run(world, 1)  # the copies read back: the pause starts
    world.later(61)
    run(world, 4)
    assert (world.phase, world.rollout["weight"]) == ("Canary", 50), world.rollout
    metrics.track_model("ml", "fraud", world.status)
    assert ("ml", "fraud", "Shadow") not in {s.labels and tuple(s.labels.values())
                                             for m in metrics.PHASE.collect() for s in m.samples}
    metrics.forget_model("ml", "fraud")
