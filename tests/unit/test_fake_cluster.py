"""The fake API server world (tests/support/fake_cluster.py) behaves like
Kubernetes where the rollout-safety property test relies on it."""
from __future__ import annotations

import copy

import pytest

from modeldeploy.api import parse_spec
from modeldeploy.builders import Owner, Role, build_autoscaler, build_deployment
from modeldeploy.reconcile.drift import FIELD_MANAGER, HANDOVER_MANAGER, needs_apply, owns, replicas_handover
from modeldeploy.rollout import ABORT
from modeldeploy.runtimes import load_runtime_table
from modeldeploy.status.observed import summarize_pod
from support.fake_cluster import CRASH_LOOP, NEVER_READY, ApiError, FakeCluster, Operator

TABLE = load_runtime_table()


def spec(version="v1", **extra):
    raw = {"model": {"uri": f"s3://m/{version}", "version": version, "format": "sklearn"},
           "resources": {"requests": {"cpu": "100m"}}, **extra}
    return raw


def deployment(cluster, replicas=3, version="v1", autoscaling=None):
    raw = spec(version, **({"autoscaling": autoscaling} if autoscaling else {"replicas": replicas}))
    parsed = parse_spec(raw, known_formats=TABLE.known_formats, name="fraud")
    owner = Owner("fraud", cluster.namespace, "md-uid")
    return build_deployment(owner, parsed, TABLE, role=Role.STABLE, replicas=parsed.fixed_replicas), parsed, owner


def settle(cluster, seconds=30):
    for _ in range(seconds // 5):
        cluster.later(5)
        cluster.sync()


def test_generation_and_resource_version():
    cluster = FakeCluster()
    manifest, _, _ = deployment(cluster)
    live = cluster.apply(manifest)
    assert live["metadata"]["generation"] == 1
    rv = live["metadata"]["resourceVersion"]
    again = cluster.apply(manifest)
    assert again["metadata"]["resourceVersion"] == rv, "a no-op apply changes nothing"
    cluster.sync()
    status_only = cluster.get("Deployment", "fraud-stable")
    assert status_only["metadata"]["generation"] == 1 and status_only["metadata"]["resourceVersion"] != rv
    changed = copy.deepcopy(manifest)
    changed["spec"]["replicas"] = 4
    assert cluster.apply(changed)["metadata"]["generation"] == 2


def test_managed_fields_in_real_fieldsv1_shape():
    cluster = FakeCluster()
    manifest, _, _ = deployment(cluster)
    live = cluster.apply(manifest)
    [entry] = live["metadata"]["managedFields"]
    assert entry["manager"] == FIELD_MANAGER and entry["operation"] == "Apply" and entry["fieldsType"] == "FieldsV1"
    fields = entry["fieldsV1"]
    assert fields["f:spec"]["f:replicas"] == {}
    assert fields["f:spec"]["f:selector"] == {}  # atomic
    containers = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]
    server = containers['k:{"name":"model-server"}']
    assert server["."] == {} and "f:image" in server
    assert 'k:{"containerPort":9000,"protocol":"TCP"}' in server["f:ports"] or any(
        k.startswith('k:{"containerPort"') for k in server["f:ports"])
    assert any(k.startswith('k:{"uid":') for k in fields["f:metadata"]["f:ownerReferences"])
    assert not needs_apply(manifest, live)


def test_a_field_no_manager_sends_any_more_is_dropped_and_replicas_default_to_one():
    cluster = FakeCluster()
    manifest, _, _ = deployment(cluster, replicas=3)
    cluster.apply(manifest)
    without = copy.deepcopy(manifest)
    del without["spec"]["replicas"]
    live = cluster.get("Deployment", "fraud-stable")
    assert needs_apply(without, live), "drift sees the field we stopped sending"
    assert cluster.apply(without)["spec"]["replicas"] == 1


def test_a_field_another_manager_owns_survives_the_handover():
    cluster = FakeCluster()
    manifest, _, _ = deployment(cluster, replicas=3)
    cluster.apply(manifest)
    without = copy.deepcopy(manifest)
    del without["spec"]["replicas"]
    live = cluster.get("Deployment", "fraud-stable")
    handover = replicas_handover(without, live)
    assert handover is not None
    cluster.apply(handover, HANDOVER_MANAGER)
    after = cluster.apply(without)
    assert after["spec"]["replicas"] == 3
    assert not owns(after, ("spec", "replicas")) and owns(after, ("spec", "replicas"), HANDOVER_MANAGER)


def test_an_apply_without_force_conflicts_with_another_managers_value():
    cluster = FakeCluster()
    manifest, _, _ = deployment(cluster, replicas=3)
    cluster.apply(manifest)
    cluster.update_scale("Deployment", "fraud-stable", 5)  # the HPA took replicas
    handover = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fraud-stable", "namespace": "ml"},
                "spec": {"replicas": 3}}
    with pytest.raises(ApiError) as conflict:
        cluster.apply(handover, HANDOVER_MANAGER, force=False)
    assert conflict.value.status == 409
    assert cluster.get("Deployment", "fraud-stable")["spec"]["replicas"] == 5
    handover["spec"]["replicas"] = 5  # the same value: shared ownership, no conflict
    assert cluster.apply(handover, HANDOVER_MANAGER, force=False)["spec"]["replicas"] == 5
    assert cluster.apply(dict(handover, spec={"replicas": 3}), HANDOVER_MANAGER)["spec"]["replicas"] == 3  # force


def test_removed_list_entries_and_map_keys_disappear():
    cluster = FakeCluster()
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
             "metadata": {"name": "fraud", "namespace": "ml"},
             "spec": {"parentRefs": [{"name": "gw"}], "hostnames": ["a.example.com"],
                      "rules": [{"backendRefs": [{"name": "fraud-stable", "port": 80, "weight": 100}]}]}}
    cluster.apply(route)
    del route["spec"]["hostnames"]
    live = cluster.apply(route)
    assert "hostnames" not in live["spec"]
    assert live["spec"]["rules"][0]["backendRefs"][0]["kind"] == "Service", "API defaults filled in"


def test_hpa_is_another_manager_of_replicas():
    cluster = FakeCluster()
    manifest, parsed, owner = deployment(cluster, autoscaling={"minReplicas": 2, "maxReplicas": 5})
    cluster.apply(manifest)
    cluster.apply(build_autoscaler(owner, parsed.autoscaling))
    cluster.hpa_wants = 9
    cluster.hpa_sync()
    live = cluster.get("Deployment", "fraud-stable")
    assert live["spec"]["replicas"] == 5
    scale = [e for e in live["metadata"]["managedFields"] if e.get("subresource") == "scale"]
    assert scale and scale[0]["operation"] == "Update" and scale[0]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    # Re-applying our manifest (without replicas) leaves the HPA's count alone.
    assert cluster.apply(manifest)["spec"]["replicas"] == 5


def test_owner_reference_gc_removes_children_and_pods():
    cluster = FakeCluster()
    md = cluster.create_model("fraud", spec(replicas=2))
    operator = Operator(cluster, TABLE)
    operator.reconcile("fraud")
    cluster.sync()
    assert cluster.objects and cluster.pods
    cluster.delete_model("fraud")
    assert not cluster.objects and not cluster.pods
    assert md["metadata"]["uid"]


def test_rolling_update_never_drops_ready_pods():
    cluster = FakeCluster()
    manifest, _, _ = deployment(cluster, replicas=4)
    cluster.apply(manifest)
    settle(cluster)
    status = cluster.get("Deployment", "fraud-stable")["status"]
    assert status["readyReplicas"] == 4 and status["updatedReplicas"] == 4
    newer, _, _ = deployment(cluster, replicas=4, version="v2")
    cluster.apply(newer)
    lowest = 4
    for _ in range(20):
        cluster.sync()
        ready = sum(1 for p in cluster.pods.values() if cluster.ready(p))
        lowest = min(lowest, ready)
        assert len(cluster.pods) <= 5, "maxSurge 25% of 4 is one pod"
        cluster.later(2)
    assert lowest == 4
    status = cluster.get("Deployment", "fraud-stable")["status"]
    assert status["updatedReplicas"] == status["readyReplicas"] == 4 and status["replicas"] == 4
    assert {p.version for p in cluster.pods.values()} == {"v2"}


def test_never_ready_pods_hit_the_progress_deadline():
    cluster = FakeCluster()
    cluster.behave("v1", NEVER_READY)
    manifest, _, _ = deployment(cluster, replicas=1)
    manifest["spec"]["progressDeadlineSeconds"] = 30
    cluster.apply(manifest)
    settle(cluster, 60)
    progressing = next(c for c in cluster.get("Deployment", "fraud-stable")["status"]["conditions"]
                       if c["type"] == "Progressing")
    assert progressing["status"] == "False" and progressing["reason"] == "ProgressDeadlineExceeded"


def test_crash_loop_pods_restart_and_are_sometimes_ready():
    cluster = FakeCluster()
    cluster.behave("v1", CRASH_LOOP)
    manifest, _, _ = deployment(cluster, replicas=1)
    cluster.apply(manifest)
    seen = []
    for _ in range(30):
        cluster.sync()
        [body] = cluster.pod_bodies()
        seen.append(summarize_pod(body))
        cluster.later(2)
    assert seen[-1].restart_count > seen[0].restart_count >= 1
    assert any(s.ready for s in seen) and any(w.reason == "CrashLoopBackOff" for s in seen for w in s.waiting)
    assert seen[-1].revision and seen[-1].role == "stable"


def test_pods_stay_pending_without_capacity():
    cluster = FakeCluster(capacity=2)
    manifest, _, _ = deployment(cluster, replicas=3)
    cluster.apply(manifest)
    settle(cluster)
    phases = sorted(body["status"]["phase"] for body in cluster.pod_bodies())
    assert phases == ["Pending", "Running", "Running"]
    cluster.capacity = 3
    settle(cluster)
    assert cluster.get("Deployment", "fraud-stable")["status"]["readyReplicas"] == 3


def test_operator_loop_brings_a_model_up():
    cluster = FakeCluster()
    cluster.create_model("fraud", spec(replicas=2))
    operator = Operator(cluster, TABLE)
    for _ in range(6):
        result = operator.reconcile("fraud")
        assert result.completed
        cluster.later(5)
        cluster.sync()
    status = cluster.models["fraud"]["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", status
    # A steady state writes nothing.
    rv = cluster.rv
    operator.reconcile("fraud")
    assert cluster.rv == rv


def test_operator_loop_writes_and_reports_with_the_controllers_own_code():
    """Operator runs Controller._report: the status that records an abort is
    written before the annotation is consumed, so a lost status write (409)
    keeps the request for the next pass (issue 9 defect 10)."""
    cluster = FakeCluster()
    cluster.create_model("fraud", spec(replicas=2))
    operator = Operator(cluster, TABLE)
    for _ in range(4):
        operator.reconcile("fraud")
        cluster.later(5)
        cluster.sync()
    cluster.edit_spec("fraud", spec("v2", replicas=2))
    operator.reconcile("fraud")
    assert cluster.models["fraud"]["status"]["rollout"]["stage"] == "Canary"
    cluster.annotate("fraud", ABORT, "true")
    cluster.status_failure = 409
    lost = operator.reconcile("fraud")
    assert not lost.completed and lost.error.status == 409
    assert cluster.models["fraud"]["metadata"]["annotations"][ABORT] == "true"
    assert cluster.models["fraud"]["status"]["rollout"]["stage"] == "Canary"
    again = operator.reconcile("fraud")
    assert again.completed
    assert ABORT not in cluster.models["fraud"]["metadata"]["annotations"]
    assert cluster.models["fraud"]["status"]["rollout"]["stage"] == "RolledBack"
    assert any(reason == "RolledBack" for _, _, reason, _ in cluster.events), cluster.events


def test_a_lagging_cache_still_holds_the_operators_own_writes():
    """As the controller's watch cache does (it puts its own apply responses
    in): a pass from an earlier snapshot sees the children this operator
    wrote since, but not the pods the cluster made meanwhile."""
    cluster = FakeCluster()
    cluster.create_model("fraud", spec(replicas=2))
    operator = Operator(cluster, TABLE)
    before = operator.snapshot("fraud")
    assert not before.children
    operator.reconcile("fraud")
    cluster.sync()
    world = operator.observe("fraud", before)
    assert ("Deployment", "fraud-stable") in world.children
    assert world.pods == () and cluster.pod_bodies("fraud")
