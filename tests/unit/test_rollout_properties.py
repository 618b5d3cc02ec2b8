"""Properties of the rollout machine over random histories of a simulated cluster:
pods that get ready or crash, time passing, requests, spec changes, analysis
answers, with the provider being `replicas` or `gatewayAPI`."""

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from modeldeploy.rollout import ABORT, PROMOTE, AnalysisResults, MetricResult, canary_replicas
from support.rollout_world import World, spec_for

GATEWAY = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
ROLLOUT = {
    "steps": [{"setWeight": 20}, {"pause": {"duration": "30s"}}, {"setWeight": 60}, {"pause": {}}, {"setWeight": 100}],
    "approvedVersion": "v9",
    "progressDeadlineSeconds": 600,
    "analysis": {"interval": "20s", "failureLimit": 2, "prometheus": {"address": "http://p:9090"},
                 "metrics": [{"name": "errors", "query": "e", "max": 0.1}]},
}
VERSIONS = ("v7", "v8", "v9")

actions = st.lists(
    st.one_of(
        st.just(("reconcile",)),
        st.just(("ready",)),
        st.tuples(st.just("later"), st.integers(1, 120)),
        st.tuples(st.just("version"), st.sampled_from(VERSIONS)),
        st.tuples(st.just("annotate"), st.sampled_from([PROMOTE, ABORT])),
        st.just(("crash",)),
        st.tuples(st.just("answer"), st.sampled_from([0.0, 0.5, None])),
        st.just(("route lags",)),
    ),
    max_size=25,
)


def spec(version, provider, replicas):
    traffic = GATEWAY if provider == "gatewayAPI" else {}
    return spec_for(version, replicas=replicas, rollout=ROLLOUT, **({"traffic": traffic} if traffic else {}))


def answer_with(value):
    return lambda plan: AnalysisResults(metrics=(MetricResult("errors", value),))


def act(world, action, provider, replicas):
    kind = action[0]
    if kind == "reconcile":
        world.reconcile()
    elif kind == "ready":
        world.pods_ready()
    elif kind == "later":
        world.later(action[1])
    elif kind == "version":
        world.change(spec(action[1], provider, replicas))
    elif kind == "annotate":
        world.annotations[action[1]] = "true"
    elif kind == "crash" and world.canary is not None:
        world.canary.crashing, world.canary.restarts = True, world.canary.restarts + 3
    elif kind == "answer":
        world.analysis_answer = answer_with(action[1])
    elif kind == "route lags" and world.route is not None:
        world.route = None  # the route not read back this time


def check_invariants(world):
    previous = 0
    for weights, ready, base in world.passes:
        assert 0 <= weights.canary <= 100 and weights.stable + weights.canary == 100
        if weights.canary > previous:
            # Raised only onto canary pods that were ready for that share.
            assert ready >= canary_replicas(base, weights.canary), (weights, ready, base)
        previous = weights.canary
    status = world.status or {}
    traffic = status.get("traffic")
    if traffic:
        assert traffic["stable"] + traffic["canary"] == 100


def settle(world):
    """A fair world: pods get ready, time passes, analysis passes, pauses approved."""
    world.analysis_answer = answer_with(0.0)
    world.annotations.clear()
    approved = world.spec.rollout.model_copy(update={"approved_version": world.spec.model.version})
    world.change(world.spec.model_copy(update={"rollout": approved}))  # not a new revision
    for _ in range(60):
        world.reconcile()
        world.pods_ready()
        world.later(31)
        stage = world.rollout.get("stage")
        if stage in ("Stable", "RolledBack") and world.canary is None:
            return
    raise AssertionError(f"rollout did not finish: {world.rollout}")


@settings(max_examples=int(__import__("os").environ.get("ROLLOUT_EXAMPLES", 30)), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=actions,
    provider=st.sampled_from(["replicas", "gatewayAPI"]),
    replicas=st.integers(1, 5),
)
def test_weights_are_sane_and_every_rollout_ends(history, provider, replicas):
    world = World(spec=spec("v7", provider, replicas))
    world.reconcile()
    world.pods_ready()
    world.reconcile()
    for action in [("version", "v8"), *history]:  # always a rollout to take apart
        act(world, action, provider, replicas)
    settle(world)
    check_invariants(world)

    started = sum(1 for d in world.decisions for e in d.events if e.reason == "CanaryStarted")
    ended = [h for d in world.decisions for h in d.history]
    # Every canary ends exactly once: Promoted, RolledBack or Aborted.
    assert len(ended) == started
    assert {h.result for h in ended} <= {"Promoted", "RolledBack", "Aborted"}
    for entry in ended:
        event(entry.result)


@settings(max_examples=int(__import__("os").environ.get("ROLLOUT_EXAMPLES", 30)), deadline=None)
@given(history=actions, provider=st.sampled_from(["replicas", "gatewayAPI"]))
def test_a_restart_resumes_where_it_was(history, provider):
    """Deciding again from the stored status (as a restarted operator would),
    with nothing changed in the cluster, repeats no step and records nothing twice."""
    world = World(spec=spec("v7", provider, 3))
    world.reconcile()
    world.pods_ready()
    for action in [("version", "v8"), *history]:
        act(world, action, provider, 3)
    world.reconcile()
    before = world.rollout
    again = world.reconcile()
    after = world.rollout
    assert after.get("step", 0) >= before.get("step", 0) or after.get("stage") != before.get("stage")
    assert not any(e.reason == "CanaryStarted" for e in again.events)
    if after.get("stage") == before.get("stage") == "Canary":
        assert after["step"] >= before["step"]
        assert after["failedChecks"] >= before["failedChecks"]
