"""spec.rollout.capacity.mode Replace (issue 11): the arithmetic
(rollout/capacity.py), then whole rollouts on the fake cluster with room
for exactly `replicas` pods, sampled after every pass and every controller
round: pods never above replicas + maxSurge, ready pods never below
replicas - maxUnavailable once reached, and traffic only on ready pods."""
from __future__ import annotations

import math

import pytest

from modeldeploy.builders.labels import NAME as NAME_LABEL, ROLE
from modeldeploy.rollout.capacity import Budget, RolePods, backward, carriers, forward
from support.fake_cluster import CRASH_LOOP, CRASH_PERIOD, NEVER_READY, READY, FakeCluster, Operator

NAME = "fraud"
TRAFFIC = {"replicas": {"provider": "replicas"},
           "gatewayAPI": {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}}


# -- the arithmetic ---------------------------------------------------------------------


def test_carriers_never_send_traffic_to_no_pod():
    assert carriers(0, 50) == 1 and carriers(3, 0) == 0 and carriers(3, 50) == 2 and carriers(3, 100) == 3
    # Complementary shares never need more than floor + 1 pods between them.
    for floor in range(0, 12):
        for share in range(101):
            assert carriers(floor, share) + carriers(floor, 100 - share) <= floor + 1 + (floor == 0)


def test_forward_with_no_spare_room_frees_a_stable_pod_first():
    budget = Budget(replicas=2, surge=0, unavailable=1)
    first = forward(budget, RolePods(2, 2, 2), RolePods(0, 0, 0), carried=0, weight=0, canary_target=1)
    assert (first.stable, first.canary) == (1, 0), "no room until the stable pod is gone"
    second = forward(budget, RolePods(1, 1, 1), RolePods(0, 0, 0), carried=0, weight=0, canary_target=1)
    assert (second.stable, second.canary) == (1, 1)


def test_forward_with_surge_keeps_stable_whole_while_there_is_room():
    budget = Budget(replicas=4, surge=1, unavailable=1)
    layout = forward(budget, RolePods(4, 4, 4), RolePods(0, 0, 0), carried=0, weight=0, canary_target=1)
    assert (layout.stable, layout.canary) == (4, 1)
    layout = forward(budget, RolePods(4, 4, 4), RolePods(1, 1, 1), carried=25, weight=25, canary_target=2)
    assert (layout.stable, layout.canary) == (3, 1), "stable gives one pod up before the canary's second"


def test_forward_never_drops_ready_pods_below_the_floor():
    budget = Budget(replicas=4, surge=0, unavailable=1)
    layout = forward(budget, RolePods(4, 4, 4), RolePods(0, 0, 0), carried=0, weight=0, canary_target=4)
    assert layout.stable == 3, "one pod below the replicas at most, while the canary has none ready"


def test_backward_moves_traffic_only_as_stable_becomes_ready_and_removes_canary_pods_last():
    budget = Budget(replicas=2, surge=0, unavailable=1)
    # All traffic and both pods on the canary; stable empty.
    step = backward(budget, RolePods(0, 0, 0), RolePods(2, 2, 2), carried=100, weighted=True)
    assert (step.stable, step.canary, step.weight) == (0, 1, 100)
    step = backward(budget, RolePods(0, 0, 0), RolePods(1, 1, 1), carried=100, weighted=True)
    assert (step.stable, step.canary, step.weight) == (1, 1, 100), "stable grows into the room"
    step = backward(budget, RolePods(1, 1, 0), RolePods(1, 1, 1), carried=100, weighted=True)
    assert step.weight == 100 and step.canary == 1, "stable's pod is not ready: the traffic stays"
    step = backward(budget, RolePods(1, 1, 1), RolePods(1, 1, 1), carried=100, weighted=True)
    assert step.weight == 0 and step.canary == 1, "traffic moves; the canary pod waits for the route"
    step = backward(budget, RolePods(1, 1, 1), RolePods(1, 1, 1), carried=0, weighted=True)
    assert (step.stable, step.canary) == (1, 0)
    step = backward(budget, RolePods(1, 1, 1), RolePods(0, 0, 0), carried=0, weighted=True)
    assert (step.stable, step.canary, step.weight) == (2, 0, 0)


def test_backward_drops_a_canary_that_carries_nothing_at_once():
    budget = Budget(replicas=2, surge=0, unavailable=1)
    step = backward(budget, RolePods(1, 1, 1), RolePods(1, 1, 0), carried=50, weighted=True)
    assert (step.canary, step.weight) == (0, 0)


# -- whole rollouts on the fake cluster ---------------------------------------------------------


def spec(version, provider="replicas", replicas=2, surge=0, unavailable=1, steps=None):
    capacity = {"mode": "Replace", "maxSurge": surge, "maxUnavailable": unavailable}
    return {"model": {"uri": f"s3://m/{version}", "version": version, "format": "sklearn"},
            "replicas": replicas, "traffic": TRAFFIC[provider],
            "rollout": {"capacity": capacity, "progressDeadlineSeconds": 300,
                        "steps": steps if steps is not None else [{"setWeight": 50}, {"pause": {"duration": "30s"}}]}}


class Watch:
    """Samples the fake cluster after every pass and every controller round."""

    def __init__(self, cluster: FakeCluster, replicas: int, surge: int, unavailable: int):
        self.cluster, self.budget = cluster, Budget(replicas, surge, unavailable)
        self.most_pods = 0
        self.least_ready = None  # once the first rollout was whole
        self.samples = 0

    def pods(self):
        return [p for p in self.cluster.pods.values() if p.labels.get(NAME_LABEL) == NAME]

    def ready(self, role=None):
        return sum(1 for p in self.pods() if self.cluster.ready(p) and (role is None or p.labels.get(ROLE) == role))

    def check(self, whole: bool):
        self.samples += 1
        pods = self.pods()
        self.most_pods = max(self.most_pods, len(pods))
        assert len(pods) <= self.budget.total, f"{len(pods)} pods, budget {self.budget.total}"
        if whole:
            ready = self.ready()
            self.least_ready = ready if self.least_ready is None else min(self.least_ready, ready)
            assert ready >= self.budget.floor, f"{ready} ready pods, floor {self.budget.floor}"
        weights = self.cluster.route_weights(NAME)
        # (One pod in all: the swap is a gap the budget accepts.)
        if whole and weights is not None and self.budget.total > 1:
            stable_w, canary_w = weights[1]
            total = stable_w + canary_w
            if total:
                share = round(100 * canary_w / total)
                assert self.ready("canary") >= carriers(self.budget.floor, share), \
                    f"route sends {share}% to the canary, {self.ready('canary')} ready"
                assert self.ready("stable") >= carriers(self.budget.floor, 100 - share), \
                    f"route sends {100 - share}% to stable, {self.ready('stable')} ready"


def drive(cluster, operator, watch, until, *, whole=True, seconds=600):
    for _ in range(seconds // 2):
        result = operator.reconcile(NAME)
        assert result.completed, result.error
        watch.check(whole)
        cluster.sync()
        watch.check(whole)
        status = cluster.models[NAME]["status"]
        if until(status):
            return status
        cluster.later(2)
        cluster.sync()
        watch.check(whole)
    raise AssertionError(f"not reached in {seconds}s: {cluster.models[NAME]['status'].get('rollout')}")


def stable_at(version):
    def reached(status):
        stable = status.get("stable") or {}
        return (stable.get("modelVersion") == version and (status.get("rollout") or {}).get("stage") == "Stable"
                and "canary" not in status and status.get("phase") == "Ready")
    return reached


@pytest.mark.parametrize("provider", ["replicas", "gatewayAPI"])
@pytest.mark.parametrize("replicas, surge, unavailable", [(2, 0, 1), (4, 0, 1), (4, 1, 1), (3, 0, 2), (1, 0, 1)])
def test_a_replace_rollout_promotes_within_its_budget(provider, replicas, surge, unavailable):
    cluster = FakeCluster(capacity=replicas + surge)  # no room for a single pod more
    operator, watch = Operator(cluster), Watch(cluster, replicas, surge, unavailable)
    cluster.create_model(NAME, spec("v1", provider, replicas, surge, unavailable))
    drive(cluster, operator, watch, stable_at("v1"), whole=False)
    cluster.edit_spec(NAME, spec("v2", provider, replicas, surge, unavailable))
    status = drive(cluster, operator, watch, stable_at("v2"))
    assert all(p.version == "v2" for p in watch.pods()) and len(watch.pods()) == replicas
    assert status["capacity"] == {"mode": "Replace", "budget": replicas + surge,
                                  "minReady": replicas - unavailable, "stable": replicas, "canary": 0, "surge": 0,
                                  "replicas": replicas, "selector": f"modeldeploy.io/name={NAME}"}
    assert status["history"][-1]["result"] == "Promoted"
    assert watch.most_pods <= replicas + surge


@pytest.mark.parametrize("provider", ["replicas", "gatewayAPI"])
def test_a_replace_rollback_gives_stable_its_pods_back_before_its_traffic(provider):
    cluster = FakeCluster(capacity=2)
    operator, watch = Operator(cluster), Watch(cluster, 2, 0, 1)
    steps = [{"setWeight": 50}, {"pause": {}}]
    cluster.create_model(NAME, spec("v1", provider, steps=steps))
    drive(cluster, operator, watch, stable_at("v1"), whole=False)
    cluster.edit_spec(NAME, spec("v2", provider, steps=steps))
    drive(cluster, operator, watch, lambda s: (s.get("rollout") or {}).get("pausedBy") == "approval")
    assert (watch.ready("stable"), watch.ready("canary")) == (1, 1)
    cluster.behave("v2", CRASH_LOOP)
    status = drive(cluster, operator, watch, lambda s: (s.get("rollout") or {}).get("stage") == "RolledBack"
                   and watch.ready("stable") == 2 and not [p for p in watch.pods() if p.labels.get(ROLE) == "canary"])
    assert "crash-looping" in status["rollout"]["message"]
    assert ("Deployment", f"{NAME}-canary") not in cluster.objects
    assert status["capacity"]["stable"] == 2 and status["capacity"]["canary"] == 0


def v2_paused_at_half_on_two_pods():
    """Room for two pods, v1 stable; v2's canary holds one of them at 50 %,
    paused for approval."""
    cluster = FakeCluster(capacity=2)
    operator, watch = Operator(cluster), Watch(cluster, 2, 0, 1)
    steps = [{"setWeight": 50}, {"pause": {}}]
    cluster.create_model(NAME, spec("v1", steps=steps))
    drive(cluster, operator, watch, stable_at("v1"), whole=False)
    cluster.edit_spec(NAME, spec("v2", steps=steps))
    drive(cluster, operator, watch, lambda s: (s.get("rollout") or {}).get("pausedBy") == "approval")
    return cluster, operator, watch, steps


def test_a_new_revision_waits_until_the_previous_canary_is_walked_back():
    cluster, operator, watch, steps = v2_paused_at_half_on_two_pods()
    cluster.edit_spec(NAME, spec("v3", steps=steps))
    seen_v3_before_v2_gone = []

    def v3_paused(status):
        versions = {p.version for p in watch.pods() if p.labels.get(ROLE) == "canary"}
        if "v3" in versions and "v2" in versions:
            seen_v3_before_v2_gone.append(True)
        rollout = status.get("rollout") or {}
        return rollout.get("modelVersion") == "v3" and rollout.get("paused" + "By") == "approval"
    drive(cluster, operator, watch, v3_paused)
    assert not seen_v3_before_v2_gone, "v2's canary pods were re-templated in place"
    assert math.isclose(watch.ready("canary"), 1)


# -- defects the property test found (test_rollout_safety.py, capacity mode Replace) ---------------


def test_found_the_stable_deployments_own_rolling_update_keeps_the_budget():
    # The first revision replaced before its status was recorded (the write
    # was lost): stable is re-templated in place, and its own rolling update
    # added 25% pods above the budget.
    cluster = FakeCluster(capacity=10)
    operator, watch = Operator(cluster), Watch(cluster, 2, 0, 1)
    cluster.create_model(NAME, spec("v1"))
    cluster.status_failure = 409
    operator.reconcile(NAME)
    cluster.status_failure = None
    cluster.sync()
    cluster.edit_spec(NAME, spec("v2"))
    drive(cluster, operator, watch, stable_at("v2"), whole=False)
    assert watch.most_pods <= 2
    strategy = cluster.objects[("Deployment", f"{NAME}-stable")].body["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}


def test_found_the_replicas_providers_status_counts_the_canary_pods_handed_back():
    cluster = FakeCluster(capacity=5)
    operator, watch = Operator(cluster), Watch(cluster, 4, 1, 0)
    steps = [{"setWeight": 50}, {"pause": {}}]
    cluster.create_model(NAME, spec("v1", replicas=4, surge=1, unavailable=0, steps=steps))
    drive(cluster, operator, watch, stable_at("v1"), whole=False)
    cluster.edit_spec(NAME, spec("v2", replicas=4, surge=1, unavailable=0, steps=steps))
    drive(cluster, operator, watch, lambda s: (s.get("rollout") or {}).get("pausedBy") == "approval")
    cluster.edit_spec(NAME, spec("v3", replicas=4, surge=1, unavailable=0, steps=steps))
    seen = []

    def traffic_is_real(status):
        ready = [p for p in watch.pods() if cluster.ready(p)]
        canary = sum(1 for p in ready if p.labels.get(ROLE) == "canary")
        actual = int(100 * canary / len(ready) + 0.5)
        seen.append((status["traffic"]["canary"], actual))
        assert status["traffic"]["canary"] == actual, f"status says {status['traffic']}, the pods carry {actual}%"
        rollout = status.get("rollout") or {}
        return rollout.get("modelVersion") == "v3" and rollout.get("pausedBy") == "approval"
    drive(cluster, operator, watch, traffic_is_real)
    assert any(canary > 0 for canary, _ in seen[:3]), "the old canary's pods served while handed back"


def test_found_stable_pods_that_cannot_get_ready_while_taking_their_pods_back_stall_the_model():
    cluster = FakeCluster(capacity=3)
    operator, watch = Operator(cluster), Watch(cluster, 3, 0, 1)
    steps = [{"setWeight": 50}, {"pause": {}}]
    cluster.create_model(NAME, spec("v1", replicas=3, steps=steps))
    drive(cluster, operator, watch, stable_at("v1"), whole=False)
    cluster.edit_spec(NAME, spec("v2", replicas=3, steps=steps))
    drive(cluster, operator, watch, lambda s: (s.get("rollout") or {}).get("pausedBy") == "approval")
    cluster.behave("v1", CRASH_LOOP)
    cluster.edit_spec(NAME, spec("v3", replicas=3, steps=steps))

    def stalled(status):
        return next((c for c in status.get("conditions", []) if c["type"] == "Stalled"
                     and c["status"] == "True"), None)
    status = drive(cluster, operator, watch, stalled, whole=False)
    assert stalled(status)["reason"] == "PodsCrashLooping", status["conditions"]
    assert "the canary's pods keep serving" in stalled(status)["message"]
    assert watch.ready("canary") >= 1, "the canary's ready pods were not taken away"


def test_found_switching_to_replace_mid_promotion_keeps_the_canarys_ready_pods():
    cluster = FakeCluster(capacity=10)
    # Mode Surge runs more pods than Replace's budget; after the switch they
    # only ever go down, and the floor (1 ready) holds throughout.
    operator, watch = Operator(cluster), Watch(cluster, 2, 10, 1)
    surge = {"model": {"uri": "s3://m/v1", "version": "v1", "format": "sklearn"}, "replicas": 2,
             "rollout": {"steps": [{"setWeight": 50}], "progressDeadlineSeconds": 300}}
    cluster.create_model(NAME, surge)
    drive(cluster, operator, watch, stable_at("v1"), whole=False)
    v2 = {**surge, "model": {**surge["model"], "uri": "s3://m/v2", "version": "v2"}}
    cluster.edit_spec(NAME, v2)
    drive(cluster, operator, watch, lambda s: (s.get("rollout") or {}).get("stage") == "Promoting", whole=False)
    replace = {**v2, "rollout": {**v2["rollout"], "capacity": {"mode": "Replace", "maxSurge": 0}}}
    cluster.edit_spec(NAME, replace)
    drive(cluster, operator, watch, stable_at("v2"))
    assert len(watch.pods()) == 2


# -- under autoscaling: the HPA scales both roles together ---------------------------------------


def autoscaled(version, provider="replicas", surge=1, unavailable=0, steps=None):
    raw = spec(version, provider, replicas=2, surge=surge, unavailable=unavailable, steps=steps)
    del raw["replicas"]
    raw["autoscaling"] = {"minReplicas": 2, "maxReplicas": 8}
    raw["resources"] = {"requests": {"cpu": "1"}}
    return raw


@pytest.mark.parametrize("provider", ["replicas", "gatewayAPI"])
def test_under_autoscaling_a_canary_splits_the_hpas_total_and_follows_it_up_and_down(provider):
    """The HPA scales the ModelDeployment (its scale subresource): the total
    of both roles. A canary takes its share of that total instead of coming
    on top (Argo Rollouts #3849: doubled GPUs), and stable is never shrunk
    under the traffic it carries (Flagger #869)."""
    cluster = FakeCluster(capacity=40)
    operator = Operator(cluster)
    steps = [{"setWeight": 50}, {"pause": {}}]
    cluster.hpa_wants = 4
    cluster.create_model(NAME, autoscaled("v1", provider, steps=steps))

    def total():
        return cluster.models[NAME]["spec"]["autoscaling"].get("replicas") or 2

    def tick(until, whole=True, seconds=300):
        def count():
            return len([p for p in cluster.pods.values() if p.labels.get(NAME_LABEL) == NAME])
        for _ in range(seconds // 2):
            cluster.hpa_sync()
            before = count()
            assert operator.reconcile(NAME).completed
            cluster.sync()
            # The operator's writes never take the pods above the total +
            # maxSurge (nor further above it, right after the HPA lowered it).
            after, allowed = count(), total() + 1
            assert after <= max(before, allowed) or not whole, f"{after} pods for a total of {total()}"
            status = cluster.models[NAME]["status"]
            if until(status):
                return status
            cluster.later(2)
            cluster.sync()
        raise AssertionError(f"not reached: {cluster.models[NAME]['status'].get('rollout')}")

    status = tick(stable_at("v1"), whole=False)
    hpa_target = cluster.objects[("HorizontalPodAutoscaler", NAME)].body["spec"]["scaleTargetRef"]
    assert hpa_target == {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "name": NAME}
    assert status["capacity"]["replicas"] == 4 and status["capacity"]["stable"] == 4
    tick(lambda s: s["capacity"]["stable"] == 4 and len(cluster.pods) >= 4 and all(
        cluster.ready(p) for p in cluster.pods.values()))
    cluster.edit_spec(NAME, autoscaled("v2", provider, steps=steps))
    status = tick(lambda s: (s.get("rollout") or {}).get("pausedBy") == "approval")
    # 50% of 4: the canary has 2 pods, stable keeps 3 (maxSurge 1 lets it).
    assert (status["capacity"]["stable"], status["capacity"]["canary"]) == (3, 2), status["capacity"]
    # The load doubles: the HPA asks for 8 in all; both roles grow by weight.
    cluster.hpa_wants = 8
    status = tick(lambda s: (s["capacity"]["stable"], s["capacity"]["canary"]) == (5, 4)
                  and sum(1 for p in cluster.pods.values() if cluster.ready(p)) >= 9)
    # ...and falls back: the total shrinks again, the split kept.
    cluster.hpa_wants = 2
    status = tick(lambda s: (s["capacity"]["stable"], s["capacity"]["canary"]) == (2, 1))
    md = cluster.models[NAME]
    cluster.edit_spec(NAME, {**md["spec"], "rollout": {**md["spec"]["rollout"], "approvedVersion": "v2"}})
    cluster.hpa_wants = 3
    status = tick(stable_at("v2"))
    assert status["capacity"]["replicas"] == 3 and status["capacity"]["canary"] == 0


def test_found_a_lagging_cache_never_counts_ready_pods_a_deployment_is_removing():
    """Promoting (the canary taking every pod), the user sets the spec back
    to stable; the pass reads a cache from before stable's last pod went. It
    counted that pod as ready capacity and removed the canary's: nothing
    was left ready."""
    cluster = FakeCluster(capacity=2)
    operator, watch = Operator(cluster), Watch(cluster, 2, 0, 1)
    steps = [{"setWeight": 50}]
    cluster.create_model(NAME, spec("v1", steps=steps))
    drive(cluster, operator, watch, stable_at("v1"), whole=False)
    cluster.edit_spec(NAME, spec("v2", steps=steps))
    earlier = None
    for _ in range(100):
        snapshot = operator.snapshot(NAME)
        operator.reconcile(NAME)
        status = cluster.models[NAME]["status"]
        if (status.get("rollout") or {}).get("stage") == "Promoting" and status["capacity"]["stable"] == 0:
            earlier = snapshot
            break
        cluster.sync()
        cluster.later(2)
        cluster.sync()
    assert earlier is not None, cluster.models[NAME]["status"].get("rollout")
    cluster.sync()  # stable's last pod goes
    cluster.edit_spec(NAME, spec("v1", steps=steps))
    operator.reconcile(NAME, cache=earlier)
    cluster.sync()
    assert watch.ready() >= 1, [(p.name, cluster.ready(p)) for p in watch.pods()]


def test_found_one_pod_in_all_swaps_with_a_gap_instead_of_waiting_forever():
    """replicas 1, maxSurge 0 (maxUnavailable 1): the canary could never
    get its pod, nor stable its pod back, each waiting for the other."""
    budget = Budget(replicas=1, surge=0, unavailable=1)
    step = forward(budget, RolePods(1, 1, 1), RolePods(0, 0, 0), carried=0, weight=0, canary_target=1)
    assert (step.stable, step.canary) == (0, 0), "stable gives its pod up first"
    step = backward(budget, RolePods(0, 0, 0), RolePods(1, 1, 1), carried=100, weighted=True)
    assert (step.stable, step.canary, step.weight) == (0, 0, 0)
    step = backward(budget, RolePods(0, 0, 0), RolePods(0, 0, 0), carried=0, weighted=True)
    assert step.stable == 1


def test_found_a_pod_cache_behind_the_deployments_never_counts_a_gone_pod():
    """The property test's own actions (its invariant 5 failed): an abort in
    capacity mode Replace, then passes from a pod cache one pass behind the
    operator's own Deployment writes. The stale cache still held stable's
    old ready pod; the canary's last ready pod was removed on its strength."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.set_capacity(capacity="Replace")
    state.node_capacity(pods=3)
    state.controllers_progress()
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=0, on_inconclusive="Pause",
                                                      rounds=1)
    state.annotate_abort(value="true")
    state.restart_with_stale_cache(passes_ago=1)
    state.restart_with_stale_cache(passes_ago=1)  # invariant 5 failed here
    state.teardown()


def test_found_a_pod_cache_behind_never_makes_a_serving_canary_pod_look_idle():
    """The property test's own actions (its invariant 5 failed): an abort
    while promoting in capacity mode Replace, read from a cache four passes
    old, in which the canary's pod was not ready yet; it was taken away as
    one that carries nothing while it carried all the traffic."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.set_capacity(capacity="Replace")
    state.controllers_progress()
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=0, on_inconclusive="Pause",
                                                      rounds=1)
    state.annotate_abort(value="true")
    state.restart_with_stale_cache(passes_ago=4)  # invariant 5 failed here
    state.teardown()


def test_found_pods_a_rolling_update_replaces_are_no_ready_capacity_and_not_in_the_split():
    """The property test's own actions (its invariants 5, then 4, failed): a promotion
    begun in mode Surge (stable rolling to the new revision) switched to
    Replace: stable's old-revision pods counted as capacity that stays."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=0, on_inconclusive="Pause", rounds=1)
    state.set_capacity(capacity="Replace")
    state.controllers_progress()
    state.edit_replicas(replicas=3)
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=0, on_inconclusive="Pause", rounds=1)
    state.teardown()


def test_found_a_stable_pod_that_cannot_be_scheduled_while_taking_pods_back_stalls_the_model():
    """The property test's own actions (its invariant 6 failed): a node with room
    for 3 pods, a budget of 4; stable's last pod never got a node while the
    canary's pod held one, and the model said Progressing for ever."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.set_capacity(capacity="Replace")
    state.controllers_progress()
    state.controllers_progress()
    state.controllers_progress()
    state.controllers_progress()
    state.edit_autoscaling(extra=0, min_replicas=3)
    state.controllers_progress()
    state.abort_with_a_lost_status_write(code=409, then_wait=False, value="true")
    state.node_capacity(pods=3)
    state.switch_provider(provider="gatewayAPI")
    state.controllers_progress()
    state.supersede_canary_while_its_pods_are_ready(provider=None)
    state.edit_version(version="v1")
    state.operator_down_while_time_passes(seconds=5)
    state.set_capacity(capacity="Replace-surge")
    state.node_capacity(pods=3)
    state.load_asks_hpa_for(replicas=1)
    state.teardown()


def test_found_stable_is_not_re_templated_while_canary_pods_hold_their_places():
    """The property test's own actions (its invariant 10 failed, in a clean-clone
    run): stable, still running the revision a promotion begun in mode Surge
    gave it, was re-templated back while a canary pod held its place; its own
    rolling update added its surge pod on top of the budget."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-x", neighbour_first=False)
    state.operator_down_while_time_passes(seconds=5)
    state.supersede_canary_while_its_pods_are_ready(provider="gatewayAPI")
    state.pods_behave(behaviour="ready", version="v1")
    state.edit_autoscaling(extra=0, min_replicas=2)
    state.annotate_promote(value="false")
    state.prometheus_answers(answer="pass")
    state.edit_autoscaling(extra=0, min_replicas=1)
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=100, on_inconclusive="Pause", rounds=1)
    state.edit_autoscaling(extra=0, min_replicas=1)
    state.operator_down_while_time_passes(seconds=5)
    state.node_capacity(pods=3)
    state.supersede_canary_while_its_pods_are_ready(provider=None)
    state.canary_gets_traffic_then_prometheus_answers(answer="+Inf", min_samples=0, on_inconclusive="Pause", rounds=1)
    state.edit_version(version="v1")
    state.edit_steps(steps="approval")
    state.edit_version(version="v2")
    state.set_capacity(capacity="Surge")
    state.operator_down_while_time_passes(seconds=5)
    state.restart_with_stale_cache(passes_ago=4)
    state.set_capacity(capacity="Replace")
    state.set_capacity(capacity="Replace-surge")
    state.node_capacity(pods=3)
    state.annotate_promote(value="true")
    state.annotate_promote(value="true")
    state.edit_steps(steps="approval")
    state.edit_autoscaling(extra=3, min_replicas=2)
    state.edit_version(version="v1")
    state.prometheus_answers(answer="pass")
    state.prometheus_answers(answer="pass")
    state.teardown()


def test_found_only_a_pod_shown_failing_is_taken_away_as_one_that_carries_nothing():
    """The property test's own actions (its invariant 5 failed, in a clean-clone
    run): back to stable from a cache three passes old, in which the
    canary's pod and its Deployment were both not ready yet; the serving
    pod was removed."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.edit_autoscaling(extra=0, min_replicas=1)
    state.promote_then_promoted_pods_crash(crash_after=0, then_wait=False, value="true")
    state.abort_with_a_lost_status_write(code=409, then_wait=True, value="true")
    state.supersede_canary_while_its_pods_are_ready(provider=None)
    state.pods_behave(behaviour="never-ready", version="v3")
    state.supersede_canary_while_its_pods_are_ready(provider="istio")
    state.edit_replicas(replicas=4)
    state.set_capacity(capacity="Replace")
    state.edit_version(version="v1")
    state.restart_with_stale_cache(passes_ago=3)
    state.teardown()


def test_found_pods_of_the_template_a_pass_replaces_still_count_while_they_serve():
    """The property test's own actions (its invariant 5 failed, in CI): the
    first revision's status write lost, the user switches to Replace and a
    new version; the pass rolls stable straight to it (no status: no canary),
    and stable's own rolling update keeps one old ready pod (maxUnavailable
    1 of 2). That pod serves: it is capacity the pass kept, not one it lost."""
    from test_rollout_safety_second_half import RolloutSafetySecondHalf

    state = RolloutSafetySecondHalf()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.status_write_fails(code=409)
    state.set_capacity(capacity="Replace")
    state.api_server_refuses_this_version()
    state.abort_with_a_lost_status_write(code=409, then_wait=False, value="true")
    state.teardown()


def test_a_crash_looping_stable_stays_stalled_and_gets_nothing_back_between_its_crashes():
    """Stable taking its pods back crash-loops: the model says Stalled, in
    one unchanging message (no restart count, which grows every few seconds
    and would rewrite the status each pass), for as long as the loop goes on,
    also while the container runs (even ready) between two crashes; and no
    canary pod nor any traffic is handed to it (Argo Rollouts #3020)."""
    cluster = FakeCluster(capacity=3)
    operator, watch = Operator(cluster), Watch(cluster, 3, 0, 1)
    steps = [{"setWeight": 50}, {"pause": {}}]
    cluster.create_model(NAME, spec("v1", "gatewayAPI", replicas=3, steps=steps))
    drive(cluster, operator, watch, stable_at("v1"), whole=False)
    cluster.edit_spec(NAME, spec("v2", "gatewayAPI", replicas=3, steps=steps))
    drive(cluster, operator, watch, lambda s: (s.get("rollout") or {}).get("pausedBy") == "approval")
    cluster.behave("v1", CRASH_LOOP)
    cluster.sync()
    cluster.later(CRASH_PERIOD)  # two crashes: a loop, not a one-off restart
    cluster.edit_spec(NAME, spec("v3", "gatewayAPI", replicas=3, steps=steps))

    def stalled(status):
        return next((c["message"] for c in status.get("conditions", []) if c["type"] == "Stalled"
                     and c["status"] == "True"), None)
    drive(cluster, operator, watch, stalled, whole=False)

    def looping(status):  # every stable pod restarted twice: none is a one-off restart
        restarts = [cluster.pod_body(p)["status"]["containerStatuses"][0]["restartCount"]
                    for p in watch.pods() if p.labels.get(ROLE) == "stable"]
        return stalled(status) and restarts and min(restarts) >= 2
    status = drive(cluster, operator, watch, looping, whole=False)
    canary_ready, share = watch.ready("canary"), status["traffic"]["canary"]
    messages, routes = set(), set()
    for _ in range(60):  # two minutes: three crash cycles
        cluster.later(2)
        cluster.sync()
        assert operator.reconcile(NAME).completed
        cluster.sync()
        status = cluster.models[NAME]["status"]
        messages.add(stalled(status))
        routes.add(status["traffic"]["canary"])
        assert watch.ready("canary") >= canary_ready, "a canary pod was handed to a crash-looping stable"
    assert len(messages) == 1 and None not in messages, f"the stall flickered or changed: {messages}"
    assert routes == {share}, f"traffic went to the crash-looping stable: canary shares {routes}, {share} before"


def test_found_the_split_reported_counts_a_crash_looping_pod_the_service_routes_to():
    """The property test's own actions (its invariant 4 failed): stable's pods
    crash-loop while a canary is aborted in capacity mode Replace. Such a pod
    is no capacity to hand traffic back to, yet between its crashes it is
    ready and the Service routes to it: status.traffic says so."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-x", neighbour_first=False)
    state.edit_autoscaling(extra=0, min_replicas=3)
    state.set_capacity(capacity="Replace")
    state.pods_behave(behaviour="crash-loop", version="v1")
    state.abort_with_a_lost_status_write(code=409, then_wait=False, value="true")
    state.teardown()


def test_found_the_split_reported_counts_old_pods_stables_rolling_update_keeps():
    """The property test's own actions (its invariant 4 failed): a promotion
    begun in mode Surge (stable rolling to the new revision, its new pod with
    no room on the node) switched to Replace. Stable's rolling update keeps an
    old ready pod while the new one cannot start (maxUnavailable 1 of 2): the
    Service routes to it, and status.traffic says so."""
    from test_rollout_safety_second_half import RolloutSafetySecondHalf

    state = RolloutSafetySecondHalf()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.supersede_canary_while_its_pods_are_ready(provider=None)
    for _ in range(3):
        state.controllers_progress()
    state.node_capacity(pods=3)
    state.controllers_progress()
    state.controllers_progress()
    state.status_write_fails(code=409)
    state.set_capacity(capacity="Replace")
    state.teardown()


def test_found_a_pod_that_stops_being_ready_unseen_is_not_blamed_on_a_pass_from_a_stale_cache():
    """The property test's own actions (its invariant 5 failed): a rollback in
    capacity mode Replace (maxSurge 0) from a cache one pass old, in which
    stable's pod was ready; it had turned not ready since (its model slow to
    answer), unseen. The pass removed the canary's pod on the strength of
    what it had seen: no operator can see a change its cache has not brought,
    and the invariant now credits such a pod, not the pass's writes."""
    from test_rollout_safety import RolloutSafety

    state = RolloutSafety()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.api_server_refuses_this_version()
    state.set_capacity(capacity="Replace")
    state.supersede_canary_while_its_pods_are_ready(provider="gatewayAPI")
    state.prometheus_stays_unreachable_for(answer="unreachable", rounds=3, then_wait=False)
    state.pods_behave(behaviour="slow", version="v2")
    state.restart_with_stale_cache(passes_ago=1)
    state.teardown()


def test_found_a_refused_pass_reports_the_split_stables_new_strategy_leaves():
    """The property test's own actions (its invariant 4 failed): mode Replace
    set while stable rolls back to its revision under mode Surge, and the API
    server refuses the canary's revision in the same pass. The writes that
    landed gave stable maxUnavailable 1, and its rolling update took an old
    ready pod away; the held status still counted it (50/50, the pods
    carried 40/60)."""
    from test_rollout_safety_second_half import RolloutSafetySecondHalf

    state = RolloutSafetySecondHalf()
    state.create_models(neighbour="fraud-canary", neighbour_first=False)
    state.edit_replicas(replicas=0)
    state.fix_spec()
    state.annotate_promote(value="true")
    state.time_passes(seconds=5)
    state.annotate_promote(value="true")
    state.edit_steps(steps="one-step")
    state.annotate_promote(value="true")
    state.canary_gets_traffic_then_prometheus_answers(answer="pass", min_samples=0, on_inconclusive="Pause", rounds=1)
    state.edit_replicas(replicas=3)
    state.time_passes(seconds=5)
    state.api_server_refuses_this_version()
    state.annotate_promote(value="true")
    state.supersede_canary_while_its_pods_are_ready(provider=None)
    state.set_capacity(capacity="Replace")
    state.api_server_refuses_this_version()
    state.teardown()


def test_a_crash_looping_canary_pod_walked_back_stays_while_it_is_the_only_ready_pod():
    """Stable's pods stop being ready while the canary's crash-loop, and the
    user moves on to a new version: the canary is walked back first. Its
    looping pod is no capacity to hand anything to, but between two crashes
    it is ready and serves; while stable has no ready pod it is not taken
    away (it was, leaving nothing ready: found by the property test, see
    test_rollout_safety_found.py). Once stable is ready again the canary
    goes and the new version's canary starts."""
    cluster, operator, watch, steps = v2_paused_at_half_on_two_pods()
    cluster.behave("v1", NEVER_READY)
    cluster.behave("v2", CRASH_LOOP)
    cluster.sync()
    cluster.later(CRASH_PERIOD)  # two crashes: a loop, not a one-off restart
    for _ in range(CRASH_PERIOD):  # to a moment between two crashes
        if watch.ready("canary") == 1:
            break
        cluster.later(1)
        cluster.sync()
    assert (watch.ready("stable"), watch.ready("canary")) == (0, 1), "no moment with the canary's pod ready"
    cluster.edit_spec(NAME, spec("v3", steps=steps))
    for _ in range(30):  # a minute: three crash cycles
        before = watch.ready()
        assert operator.reconcile(NAME).completed
        cluster.sync()
        assert watch.ready() >= min(before, 1), f"the operator took the last ready pod away ({before} ready before)"
        cluster.later(2)
        cluster.sync()
    cluster.behave("v1", READY)
    drive(cluster, operator, watch, lambda s: (s.get("rollout") or {}).get("stage") == "Canary"
          and (s.get("canary") or {}).get("modelVersion") == "v3", whole=False)
