"""Rollouts against scarce capacity (issue 11), on the scarce GPU pool that
hack/cluster.sh adds: kwok-gpu-0 and kwok-gpu-1, 4 GPUs each, tainted. The
real scheduler places the pods, so a pod that does not fit stays Pending
with the scheduler's own reason, and the status must say it within seconds,
not as "not ready" at the deadline. Every test here uses the whole pool:
the module runs on one worker (--dist loadfile), and a fixture frees the
pool before and after each test."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from support.canary import canary_exists, model_v, route_weights, wait_phase
from support.cluster import REPO
from support.sampling import ChangeRecorder
from support.models import apply_md, condition, get_md, model_deployment, status_view, wait_ready
from support.waiting import wait_until

POOL_LABEL = ("modeldeploy.io/pool", "scarce-gpu")
POOL_NODES = ("kwok-gpu-0", "kwok-gpu-1")
GPUS_PER_NODE = 4
# How soon the status must name the scheduler's reason: a few passes, not a deadline.
SAY_WITHIN = 15


@pytest.fixture
def scarce_pool(cluster, namespace):
    """The pool, empty before the test and emptied after it (the namespace
    is deleted without waiting, so this test's pods are removed here)."""
    def bound():
        return [p for p in cluster.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items
                if p.spec.node_name in POOL_NODES]

    for node in POOL_NODES:
        gpus = cluster.core.read_node(node).status.allocatable.get("nvidia.com/gpu")
        assert gpus == str(GPUS_PER_NODE), f"{node} has {gpus} GPUs; hack/cluster.sh gives it {GPUS_PER_NODE}"
    wait_until(lambda: not bound(), timeout=60, what="the scarce pool to be free",
               describe=lambda: [f"{p.metadata.namespace}/{p.metadata.name}" for p in bound()])
    yield bound
    cluster.kubectl("-n", namespace, "delete", "modeldeployments", "--all", "--wait=false", check=False)
    cluster.kubectl("-n", namespace, "delete", "pods", "--all", "--grace-period=0", "--force", check=False)
    wait_until(lambda: not [p for p in bound() if p.metadata.namespace == namespace], timeout=60,
               what=f"the pods of {namespace} to leave the pool")


def gpu_model(name: str, replicas: int, gpus: int = GPUS_PER_NODE, **spec) -> dict:
    return model_deployment(
        name, replicas=replicas,
        resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": str(gpus)}},
        nodeSelector={POOL_LABEL[0]: POOL_LABEL[1]},
        tolerations=[{"key": POOL_LABEL[0], "operator": "Equal", "value": POOL_LABEL[1], "effect": "NoSchedule"}],
        **spec)


def stable_pods(cluster, namespace: str, name: str) -> dict[str, int]:
    """uid -> restarts of the stable role's pods."""
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"modeldeploy.io/name={name},modeldeploy.io/role=stable").items
    return {p.metadata.uid: sum(c.restart_count for c in p.status.container_statuses or ()) for p in pods}


def says(cluster, namespace: str, name: str, reason: str, *fragments: str):
    md = get_md(cluster, namespace, name)
    ready = condition(md, "Ready") or {}
    return (ready.get("status") == "False" and ready.get("reason") == reason
            and all(f in md.get("status", {}).get("message", "") for f in fragments) and md)


def test_a_canary_with_no_gpu_left_is_reported_at_once_then_rolled_back_at_the_deadline(
        cluster, namespace, operator, scarce_pool):
    # Two replicas of 4 GPUs fill both nodes: a surge canary has nowhere to go.
    doc = gpu_model("llm", 2, rollout={"progressDeadlineSeconds": 20, "steps": [{"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "llm")
    before = stable_pods(cluster, namespace, "llm")
    assert len(before) == 2

    started = time.monotonic()
    apply_md(cluster, namespace, model_v(doc, "v2"))
    md = wait_until(lambda: says(cluster, namespace, "llm", "InsufficientCapacity", "Insufficient nvidia.com/gpu",
                                 "is waiting for room"),
                    timeout=SAY_WITHIN, what="the status to say the canary waits for GPUs",
                    describe=lambda: status_view(get_md(cluster, namespace, "llm")))
    said = time.monotonic() - started
    assert md["status"]["phase"] == "Canary", status_view(md)
    assert md["status"]["traffic"]["canary"] == 0

    # Wait (the default) is bounded by progressDeadlineSeconds, then rolls back
    # with the scheduler's reason; stable is never touched.
    md = wait_phase(cluster, namespace, "llm", "RolledBack", timeout=60)
    message = condition(md, "Stalled")["message"]
    assert "not ready within 20s" in message and "cannot be scheduled" in message, message
    assert "Insufficient nvidia.com/gpu" in message, message
    assert stable_pods(cluster, namespace, "llm") == before
    assert cluster.apps.read_namespaced_deployment("llm-stable", namespace).status.ready_replicas == 2
    print(f"\ncanary without GPUs: InsufficientCapacity said {said:.1f} s after the apply; "
          f"rolled back {time.monotonic() - started:.0f} s after it (deadline 20 s)")


def test_onunschedulable_rollback_rolls_back_as_soon_as_the_scheduler_refuses(
        cluster, namespace, operator, scarce_pool):
    rollout = {"progressDeadlineSeconds": 600, "capacity": {"onUnschedulable": "Rollback"},
               "steps": [{"setWeight": 50}, {"pause": {}}]}
    doc = gpu_model("llm", 2, rollout=rollout)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "llm")
    before = stable_pods(cluster, namespace, "llm")

    started = time.monotonic()
    apply_md(cluster, namespace, model_v(doc, "v2"))
    md = wait_phase(cluster, namespace, "llm", "RolledBack", timeout=SAY_WITHIN)
    took = time.monotonic() - started
    message = condition(md, "Stalled")["message"]
    assert "cannot be scheduled (spec.rollout.capacity.onUnschedulable: Rollback)" in message, message
    assert "Insufficient nvidia.com/gpu" in message, message
    assert md["status"]["rollout"]["decisions"][-1]["metric"] == "canary-schedulable"
    assert stable_pods(cluster, namespace, "llm") == before
    wait_until(lambda: not [p for p in scarce_pool() if "canary" in p.metadata.name], timeout=30,
               what="the canary pod gone")
    print(f"\nonUnschedulable Rollback: rolled back {took:.1f} s after the apply (deadline 600 s)")


def test_a_first_deploy_and_a_scale_up_larger_than_the_pool_say_how_many_cannot_be_placed(
        cluster, namespace, operator, scarce_pool):
    started = time.monotonic()
    apply_md(cluster, namespace, gpu_model("big", 3))
    md = wait_until(lambda: says(cluster, namespace, "big", "InsufficientCapacity", "Insufficient nvidia.com/gpu"),
                    timeout=SAY_WITHIN, what="the status to say a third replica does not fit",
                    describe=lambda: status_view(get_md(cluster, namespace, "big")))
    said = time.monotonic() - started
    assert condition(md, "Reconciling")["status"] == "True" and condition(md, "Stalled")["status"] == "False"
    assert md["status"]["message"].startswith("pod big-stable-"), md["status"]["message"]

    apply_md(cluster, namespace, gpu_model("big", 2))  # what fits
    wait_ready(cluster, namespace, "big")
    apply_md(cluster, namespace, gpu_model("big", 3))  # scaling up beyond it: serving, but short
    md = wait_until(lambda: says(cluster, namespace, "big", "InsufficientCapacity", "Insufficient nvidia.com/gpu"),
                    timeout=SAY_WITHIN, what="the status to say the scale-up does not fit",
                    describe=lambda: status_view(get_md(cluster, namespace, "big")))
    assert md["status"]["phase"] == "Degraded" and md["status"]["stable"]["readyReplicas"] == 2
    print(f"\nfirst deploy larger than the pool: InsufficientCapacity said {said:.1f} s after the apply")


def test_the_custom_runtime_example_without_its_claim_says_the_claim_is_missing(cluster, namespace, operator):
    example = Path(REPO / "examples" / "04-custom-runtime.yaml")
    started = time.monotonic()
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    md = wait_until(lambda: says(cluster, namespace, "churn-scorer", "Unschedulable",
                                 'persistentvolumeclaim "model-store" not found'),
                    timeout=SAY_WITHIN, what="the status to name the missing claim",
                    describe=lambda: status_view(get_md(cluster, namespace, "churn-scorer")))
    assert md["status"]["phase"] == "Pending"
    assert condition(md, "Stalled")["status"] == "False"  # creating the claim is enough: it waits for it
    print(f"\nexample 04 without its claim: Unschedulable said {time.monotonic() - started:.1f} s after the apply")


# -- capacity mode Replace ------------------------------------------------------------------

GATEWAY = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "gateways"}]}}


class PoolSampler(ChangeRecorder):
    """The model's pods (role, revision, ready, node; terminating ones too),
    the GPUs bound on the pool and the route's weights, read every 0.1 s."""

    def __init__(self, cluster, namespace: str, name: str, route: bool = False):
        def read():
            weights = route_weights(cluster, namespace, name) if route else None
            pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"modeldeploy.io/name={name}").items
            mine = tuple(sorted(
                (p.metadata.labels.get("modeldeploy.io/role"), p.metadata.labels.get("modeldeploy.io/revision"),
                 any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or ()),
                 p.spec.node_name or "") for p in pods))
            gpus = sum(int((c.resources.limits or {}).get("nvidia.com/gpu", 0))
                       for p in cluster.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=").items
                       if p.spec.node_name in POOL_NODES for c in p.spec.containers)
            # The reads are not one snapshot: a route that moved while the
            # pods were read makes no sample (the recorder skips a failed read).
            if route and route_weights(cluster, namespace, name) != weights:
                raise RuntimeError("the route moved during the sample")
            return mine, gpus, weights
        super().__init__(read, period=0.1)

    def ready(self, sample, role: str | None = None) -> int:
        return sum(1 for r, _, ready, _ in sample[0] if ready and (role is None or r == role))


def test_replace_with_no_spare_gpu_rolls_out_and_promotes_within_the_pool(cluster, namespace, operator, scarce_pool):
    # Two replicas of 4 GPUs fill both nodes: mode Surge could not add one
    # canary pod (the test above); Replace with maxSurge 0 swaps them.
    rollout = {"progressDeadlineSeconds": 60, "capacity": {"mode": "Replace", "maxSurge": 0},
               "steps": [{"setWeight": 50}, {"pause": {"duration": "3s"}}]}
    doc = gpu_model("llm", 2, rollout=rollout)
    apply_md(cluster, namespace, doc)
    first = wait_ready(cluster, namespace, "llm")
    assert first["status"]["capacity"] == {"mode": "Replace", "budget": 2, "minReady": 1, "stable": 2, "canary": 0,
                                           "surge": 0, "replicas": 2, "selector": "modeldeploy.io/name=llm"}
    started = time.monotonic()
    with PoolSampler(cluster, namespace, "llm") as sampler:
        apply_md(cluster, namespace, model_v(doc, "v2"))
        md = wait_until(lambda: (m := get_md(cluster, namespace, "llm"))["status"].get("phase") == "Ready"
                        and m["status"]["stable"]["modelVersion"] == "v2" and m["status"]["stable"]["readyReplicas"] == 2
                        and m, timeout=120, what="v2 promoted and stable whole again",
                        describe=lambda: status_view(get_md(cluster, namespace, "llm")))
    took = time.monotonic() - started
    assert md["status"]["history"][-1]["result"] == "Promoted"
    samples = sampler.seen
    assert max(len(pods) for pods, _, _ in samples) <= 2, [s[0] for s in samples if len(s[0]) > 2][:3]
    assert max(gpus for _, gpus, _ in samples) <= 2 * GPUS_PER_NODE
    assert min(sampler.ready(s) for s in samples) >= 1, "never below replicas - maxUnavailable ready"
    canary_served = [s for s in samples if sampler.ready(s, "canary") and sampler.ready(s, "stable")]
    assert canary_served, "a canary pod served next to a stable one (setWeight 50 with no spare GPU)"
    print(f"\nReplace, maxSurge 0, 2 x 4 GPUs on 8: promoted in {took:.1f} s; {len(samples)} distinct states "
          f"sampled every 0.1 s, at most {max(len(p) for p, _, _ in samples)} pods and "
          f"{max(g for _, g, _ in samples)} GPUs, never fewer than {min(sampler.ready(s) for s in samples)} ready")


def test_replace_rollback_gives_stable_its_pods_before_its_traffic(cluster, namespace, operator, scarce_pool):
    # Four replicas of 2 GPUs on the 8: at 50% the canary holds two of them.
    rollout = {"progressDeadlineSeconds": 60, "capacity": {"mode": "Replace", "maxSurge": 0},
               "steps": [{"setWeight": 50}, {"pause": {}}]}
    doc = gpu_model("llm", 4, gpus=2, rollout=rollout, traffic=GATEWAY)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "llm")
    apply_md(cluster, namespace, model_v(doc, "v2"))
    wait_until(lambda: (get_md(cluster, namespace, "llm")["status"].get("rollout") or {}).get("pausedBy") == "approval",
               timeout=90, what="the canary at 50%, paused for approval",
               describe=lambda: status_view(get_md(cluster, namespace, "llm")))
    assert route_weights(cluster, namespace, "llm") == (50, 50)
    with PoolSampler(cluster, namespace, "llm", route=True) as sampler:
        wait_until(lambda: sampler.seen, timeout=10, what="a first sample")
        cluster.kubectl("-n", namespace, "annotate", "modeldeployment", "llm", "modeldeploy.io/abort=true")
        md = wait_until(lambda: (m := get_md(cluster, namespace, "llm"))["status"].get("phase") == "RolledBack"
                        and m["status"].get("capacity", {}).get("stable") == 4
                        and not canary_exists(cluster, namespace, "llm") and m,
                        timeout=90, what="rolled back, stable at 4 pods, the canary gone",
                        describe=lambda: status_view(get_md(cluster, namespace, "llm")))
    samples = [s for s in sampler.seen if s[2] is not None]
    floor = 3
    for pods, gpus, (stable_w, canary_w) in samples:
        share = round(100 * canary_w / (stable_w + canary_w))
        ready_stable = sum(1 for r, _, ready, _ in pods if ready and r == "stable")
        ready_canary = sum(1 for r, _, ready, _ in pods if ready and r == "canary")
        assert len(pods) <= 4, pods
        # Each role takes no more of the traffic than its ready pods carry
        # (its share of replicas - maxUnavailable, to the nearest pod).
        assert ready_stable >= max(1 if share < 100 else 0, (floor * (100 - share) + 50) // 100), (share, pods)
        assert ready_canary >= max(1 if share > 0 else 0, (floor * share + 50) // 100), (share, pods)
    shares = [round(100 * c / (s + c)) for _, _, (s, c) in samples]
    assert shares[0] == 50 and shares[-1] == 0 and sorted(shares, reverse=True) == shares, shares
    assert "aborted" in md["status"]["rollout"]["message"]
    print(f"\nReplace rollback, 4 x 2 GPUs on 8: canary share went {' -> '.join(map(str, dict.fromkeys(shares)))} "
          f"while stable grew back; at most {max(len(p) for p, _, _ in samples)} pods")


def test_under_autoscaling_the_hpa_scales_the_model_and_the_canary_takes_its_share(cluster, namespace, operator):
    """Capacity mode Replace with autoscaling: the HPA's target is the
    ModelDeployment (its scale subresource), the total of both roles. The
    local control plane has no metrics server, so the HPA's count is set
    here the way the HPA sets it (the scale subresource): the canary then
    takes its share of that total instead of coming on top of it."""
    rollout = {"progressDeadlineSeconds": 60, "steps": [{"setWeight": 50}, {"pause": {}}],
               "capacity": {"mode": "Replace", "maxSurge": 1, "maxUnavailable": 0}}
    doc = model_deployment("auto", replicas=None, autoscaling={"minReplicas": 2, "maxReplicas": 8}, rollout=rollout)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "auto")
    hpa = cluster.get_json("-n", namespace, "hpa", "auto")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
                                             "name": "auto"}
    # The operator gave the model its starting count once (an HPA ignores a
    # target at 0); the HPA controller reads it through the scale subresource.
    md = wait_until(lambda: (m := get_md(cluster, namespace, "auto"))["spec"]["autoscaling"].get("replicas") == 2
                    and m, timeout=30, what="spec.autoscaling.replicas set to 2",
                    describe=lambda: get_md(cluster, namespace, "auto")["spec"])
    assert md["status"]["capacity"]["selector"] == "modeldeploy.io/name=auto"
    scale = cluster.get_json("-n", namespace, "modeldeployments", "auto", "--subresource", "scale")
    assert (scale["spec"]["replicas"], scale["status"]["replicas"], scale["status"]["selector"]) == (
        2, 2, "modeldeploy.io/name=auto")
    wait_until(lambda: any(c["type"] == "AbleToScale" and c["status"] == "True"
                           for c in cluster.get_json("-n", namespace, "hpa", "auto").get("status", {}).get(
                               "conditions", [])),
               timeout=60, what="the HPA controller reading the ModelDeployment's scale",
               describe=lambda: cluster.get_json("-n", namespace, "hpa", "auto").get("status"))

    def split(stable, canary):
        return lambda: (m := get_md(cluster, namespace, "auto"))["status"].get("capacity", {}).get("stable") == stable \
            and m["status"]["capacity"]["canary"] == canary and m["status"]["stable"].get("readyReplicas") == stable \
            and (m["status"].get("canary") or {}).get("readyReplicas") == canary and m

    def pods():
        return len(cluster.core.list_namespaced_pod(namespace, label_selector="modeldeploy.io/name=auto").items)

    with ChangeRecorder(pods, period=0.1) as counts:
        apply_md(cluster, namespace, model_v(doc, "v2"))
        wait_until(split(2, 1), timeout=60, what="50% of 2: stable 2, canary 1 (maxSurge 1)",
                   describe=lambda: status_view(get_md(cluster, namespace, "auto")))
        most_at_two = max(counts.seen)
        cluster.kubectl("-n", namespace, "scale", "modeldeployment", "auto", "--replicas=4")  # the load doubles
        md = wait_until(split(3, 2), timeout=60, what="50% of 4: stable 3, canary 2",
                        describe=lambda: status_view(get_md(cluster, namespace, "auto")))
        assert md["status"]["rollout"]["pausedBy"] == "approval"
        cluster.kubectl("-n", namespace, "scale", "modeldeployment", "auto", "--replicas=2")  # and falls back
        wait_until(split(2, 1), timeout=60, what="back to 50% of 2",
                   describe=lambda: status_view(get_md(cluster, namespace, "auto")))
        cluster.kubectl("-n", namespace, "patch", "modeldeployment", "auto", "--type=merge",
                        "-p", '{"spec": {"rollout": {"approvedVersion": "v2"}}}')
        md = wait_until(lambda: (m := get_md(cluster, namespace, "auto"))["status"].get("phase") == "Ready"
                        and m["status"]["stable"]["modelVersion"] == "v2" and m, timeout=90, what="v2 promoted",
                        describe=lambda: status_view(get_md(cluster, namespace, "auto")))
    assert most_at_two <= 3, "total 2 + maxSurge 1: the canary never came on top of a full stable twice over"
    assert max(counts.seen) <= 5, counts.seen
    assert md["status"]["capacity"]["replicas"] == 2 and md["status"]["capacity"]["canary"] == 0
    print(f"\nautoscaled Replace: pods went {' -> '.join(map(str, counts.seen))} through a canary while the "
          f"HPA's count went 2 -> 4 -> 2 (never more than the count + maxSurge)")
