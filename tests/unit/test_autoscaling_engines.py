"""Issue 14, item 3: autoscaling on model metrics (HPA v2 metric specs) and
with KEDA, to zero and back; a new revision at zero waits, said in the status."""

import pytest

from modeldeploy import conditions as c
from modeldeploy.api import InvalidSpec, parse_spec
from modeldeploy.builders.revision import compute_revision
from modeldeploy.reconcile.plan import steady_children
from support.rollout_world import TABLE, run, settled_world, spec_for

RPS = {"type": "Pods", "pods": {"metric": {"name": "vllm_requests_per_second"},
                                "target": {"type": "AverageValue", "averageValue": "20"}}}
QUEUE = {"type": "External", "external": {"metric": {"name": "queue_depth"},
                                          "target": {"type": "Value", "value": "100"}}}
PROMETHEUS = {"type": "prometheus", "metadata": {"serverAddress": "http://prometheus.monitoring:9090",
                                                 "query": "sum(rate(requests_total[1m]))", "threshold": "5"}}
KEDA = {"minReplicas": 0, "maxReplicas": 4, "engine": "KEDA", "keda": {"triggers": [PROMETHEUS]}}


def raw(**extra):
    return {"model": {"uri": "s3://models/fraud/v1", "version": "v1", "format": "sklearn"}, **extra}


def children(spec):
    built = steady_children(name="fraud", namespace="ml", uid="u", spec=spec, table=TABLE)
    return {m["kind"]: m for m in built}


def refusal(spec) -> str:
    with pytest.raises(InvalidSpec) as refused:
        parse_spec(spec, known_formats=TABLE.known_formats)
    return str(refused.value)


# -- HPA metrics ------------------------------------------------------------------


def test_metrics_reach_the_hpa_as_written_and_need_no_cpu_request():
    hpa = children(raw(autoscaling={"maxReplicas": 8, "metrics": [RPS, QUEUE]}))["HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"] == [RPS, QUEUE]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "fraud-stable"


def test_without_metrics_the_hpa_scales_on_cpu_as_before():
    hpa = children(raw(autoscaling={"maxReplicas": 8}, resources={"requests": {"cpu": "1"}}))["HorizontalPodAutoscaler"]
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert "requests.cpu" in refusal(raw(autoscaling={"maxReplicas": 8}))


def test_under_capacity_mode_replace_custom_metrics_scale_the_whole_model():
    """The total-capacity rule holds for any metric: the HPA targets the
    ModelDeployment's scale subresource (both roles' pods, by its selector),
    and the rollout splits that total between stable and canary."""
    spec = raw(autoscaling={"maxReplicas": 8, "metrics": [RPS]}, rollout={"capacity": {"mode": "Replace"}})
    hpa = children(spec)["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
                                             "name": "fraud"}
    assert hpa["spec"]["metrics"] == [RPS]


@pytest.mark.parametrize("metric, said", [
    ({"type": "Pods", "external": QUEUE["external"]}, "exactly one of resource, pods"),
    ({"type": "Pods", "pods": RPS["pods"], "external": QUEUE["external"]}, "exactly one of resource, pods"),
    ({"type": "Pods", "pods": {"metric": {"name": "rps"}}}, "pods.target: required"),
    ({"type": "Queue", "pods": RPS["pods"]}, "type"),
])
def test_a_metric_of_the_wrong_shape_is_refused(metric, said):
    assert said in refusal(raw(autoscaling={"maxReplicas": 8, "metrics": [metric]}))


def test_autoscaling_fields_never_enter_the_revision():
    """Scaling is not a rollout: the metrics, the engine and the triggers
    leave the revision as it was (and so every existing model's hash)."""
    plain = parse_spec(raw(autoscaling={"maxReplicas": 8}, resources={"requests": {"cpu": "1"}}),
                       known_formats=TABLE.known_formats)
    metrics = parse_spec(raw(autoscaling={"maxReplicas": 8, "metrics": [RPS]}, resources={"requests": {"cpu": "1"}}),
                         known_formats=TABLE.known_formats)
    keda = parse_spec(raw(autoscaling=KEDA, resources={"requests": {"cpu": "1"}}), known_formats=TABLE.known_formats)
    assert compute_revision(plain, TABLE) == compute_revision(metrics, TABLE) == compute_revision(keda, TABLE)


# -- KEDA -------------------------------------------------------------------------


def test_engine_keda_writes_a_scaled_object_in_the_hpas_place():
    built = children(raw(autoscaling=KEDA))
    assert "HorizontalPodAutoscaler" not in built
    scaled = built["ScaledObject"]
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"] == {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fraud-stable"},
                              "minReplicaCount": 0, "maxReplicaCount": 4, "triggers": [PROMETHEUS]}
    assert "replicas" not in built["Deployment"]["spec"]  # the count is KEDA's


@pytest.mark.parametrize("autoscaling, said", [
    ({"minReplicas": 0, "maxReplicas": 4}, "needs autoscaling.engine KEDA"),
    ({"maxReplicas": 4, "engine": "KEDA"}, "needs autoscaling.keda.triggers"),
    ({"maxReplicas": 4, "keda": {"triggers": [PROMETHEUS]}}, "only with autoscaling.engine KEDA"),
    ({**KEDA, "metrics": [RPS]}, "with engine KEDA give them as autoscaling.keda.triggers"),
    ({**KEDA, "keda": {"triggers": []}}, "triggers"),
    ({**KEDA, "keda": {"triggers": [{"type": "prometheus"}]}}, "metadata"),
])
def test_keda_settings_out_of_place_are_refused(autoscaling, said):
    assert said in refusal(raw(autoscaling=autoscaling, resources={"requests": {"cpu": "1"}}))


def test_zero_is_refused_in_capacity_mode_replace():
    said = refusal(raw(autoscaling=KEDA, rollout={"capacity": {"mode": "Replace"}}))
    assert "needs rollout.capacity.mode Surge" in said


# -- a new revision while scaled to zero ------------------------------------------


def at_zero():
    world = settled_world(spec_for("v1", autoscaling=KEDA))
    world.stable.replicas = world.stable.ready = 0  # KEDA scaled the model to zero
    world.reconcile()
    return world


def test_at_zero_a_new_revision_waits_for_the_scale_up_and_says_so_without_a_deadline():
    world = at_zero()
    assert world.phase == "Ready"
    world.change(spec_for("v2", autoscaling=KEDA))
    decision = world.reconcile()
    assert decision.canary_replicas is None and decision.stable_spec.model.version == "v1"
    assert world.condition("Ready") == ("False", c.WAITING_FOR_SCALE_UP)
    assert "v2" in world.status["message"] and "scaled to zero by its autoscaler (KEDA" in world.status["message"]
    world.later(24 * 3600)  # a day without a request: still waiting, never stalled
    world.reconcile()
    assert world.condition("Stalled")[0] == "False" and world.phase == "Progressing"


def test_the_canary_starts_when_keda_scales_up_and_holds_the_model_off_zero_until_it_ends():
    world = at_zero()
    world.change(spec_for("v2", autoscaling=KEDA))
    world.reconcile()
    world.stable.replicas = 1  # a request: KEDA scales stable to 1 (the old revision, tried)
    decision = run(world, 2).decisions[-1]
    assert world.rollout["stage"] == "Canary" and world.rollout["stableFloor"] == 1
    # The floor reaches the ScaledObject: minReplicaCount 1 while the canary runs.
    assert decision.autoscaler_floor == 1
    world.annotations["modeldeploy.io/promote"] = "true"
    for _ in range(6):
        world.reconcile()
        world.pods_ready()
    assert world.rollout.get("stage") == "Stable" and world.status["stable"]["modelVersion"] == "v2"
    assert world.decisions[-1].autoscaler_floor is None  # minReplicaCount back to 0


def test_a_promote_at_zero_is_refused_aloud():
    world = at_zero()
    world.change(spec_for("v2", autoscaling=KEDA))
    world.reconcile()
    world.annotations["modeldeploy.io/promote"] = "true"
    decision = world.reconcile()
    assert "RequestIgnored" in {event.reason for event in decision.events}
    assert world.status["stable"]["modelVersion"] == "v1"


def test_the_keda_module_pins_the_release_whose_crds_the_cluster_installs():
    """hack/cluster.sh installs KEDA's CRDs from the module at KEDA_VERSION;
    hack/keda/go.mod pins the same release, with KEDA's own replace block."""
    import re
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    pinned = re.search(r"^KEDA_VERSION=(\S+)$", (repo / "hack" / "versions.sh").read_text(), re.M).group(1)
    mod = (repo / "hack" / "keda" / "go.mod").read_text()
    assert f"\tgithub.com/kedacore/keda/v2 {pinned} " in mod
    assert "\tk8s.io/client-go => k8s.io/client-go v0.35.5\n" in mod  # KEDA's replace block, repeated
    script = (repo / "hack" / "cluster.sh").read_text()
    assert 'github.com/kedacore/keda/v2@$KEDA_VERSION' in script and "config/crd/bases/" in script
    assert "crd/scaledobjects.keda.sh" in script  # waited for, Established
