"""Status derivation, as a user reading `kubectl get md -o yaml` would judge it."""

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modeldeploy.api import InvalidSpec, parse_spec
from modeldeploy.builders import compute_revision
from modeldeploy.runtimes import load_runtime_table
from modeldeploy.status import (
    ContainerWaiting,
    DeploymentCondition,
    Observed,
    ObservedDeployment,
    PodSummary,
    derive_status,
    observe_deployment,
    summarize_pod,
)

TABLE = load_runtime_table()
NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
SPEC = parse_spec(
    {"model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn"}, "replicas": 2},
    known_formats=TABLE.known_formats,
)
REV = compute_revision(SPEC, TABLE)
OLD_REV = "0123456789"


def deployment(revision=REV, ready=2, replicas=2, updated=None, total=None, conditions=(), version="v7", generation=3):
    return ObservedDeployment(
        revision=revision,
        model_version=version,
        generation=generation,
        observed_generation=generation,
        replicas=replicas,
        status_replicas=replicas if total is None else total,
        updated_replicas=replicas if updated is None else updated,
        ready_replicas=ready,
        available_replicas=ready,
        conditions=tuple(conditions),
    )


def pod(i=0, revision=REV, ready=True, restarts=0, waiting=(), terminated_ago=None):
    return PodSummary(
        name=f"fraud-stable-abc-{i}",
        role="stable",
        revision=revision,
        ready=ready,
        restart_count=restarts,
        waiting=tuple(waiting),
        last_terminated_at=None if terminated_ago is None else NOW - terminated_ago,
    )


def healthy():
    return Observed(stable=deployment(), pods=(pod(0), pod(1)))


def derive(observed, previous=None, now=NOW, spec=SPEC, revision=REV, generation=1):
    return derive_status(
        name="fraud",
        namespace="ml",
        generation=generation,
        spec=spec,
        revision=revision,
        observed=observed,
        previous=previous,
        now=now,
    )


def conditions(status):
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_serving_all_replicas_is_ready():
    status = derive(healthy())
    assert conditions(status) == {
        "Ready": ("True", "Serving"),
        "Reconciling": ("False", "Reconciled"),
        "Stalled": ("False", "NotStalled"),
    }
    assert status["phase"] == "Ready"
    assert status["observedGeneration"] == 1
    assert status["stable"] == {"revision": REV, "modelVersion": "v7", "replicas": 2, "readyReplicas": 2}
    assert "canary" not in status
    assert status["traffic"] == {"stable": 100, "canary": 0, "verified": True}
    assert status["url"] == "http://fraud.ml.svc.cluster.local"
    assert status["history"] == [
        {"revision": REV, "modelVersion": "v7", "uri": "s3://models/fraud/v7", "result": "Deployed", "time": "2025-03-01T12:00:00Z"}
    ]


def test_unchanged_cluster_gives_an_identical_status():
    first = derive(healthy())
    later = derive(healthy(), previous=first, now=NOW + timedelta(hours=5))
    assert later == first


def test_nothing_created_yet_is_pending():
    status = derive(Observed())
    assert conditions(status)["Reconciling"] == ("True", "Creating")
    assert conditions(status)["Ready"][0] == "False"
    assert status["phase"] == "Pending"
    assert "stable" not in status and status["history"] == []


def test_new_revision_rolling_out_is_progressing():
    served = derive(Observed(stable=deployment(revision=OLD_REV, version="v6"), pods=(pod(0, OLD_REV), pod(1, OLD_REV))),
                    spec=SPEC, revision=OLD_REV)
    status = derive(Observed(stable=deployment(revision=OLD_REV, version="v6")), previous=served, generation=2)
    assert conditions(status)["Ready"] == ("False", "RollingOut")
    assert conditions(status)["Reconciling"] == ("True", "RollingOut")
    assert status["phase"] == "Progressing"
    assert status["stable"]["revision"] == OLD_REV  # still serving the old one
    assert "rolling out revision" in status["message"]


def test_old_pods_still_running_is_not_ready_yet():
    status = derive(Observed(stable=deployment(total=3, updated=2)))
    assert conditions(status)["Ready"] == ("False", "RollingOut")


def test_crash_looping_pods_are_never_ready_even_if_counted_ready():
    crashing = pod(1, ready=True, restarts=3, terminated_ago=timedelta(minutes=1))
    status = derive(Observed(stable=deployment(ready=2), pods=(pod(0), crashing)))
    assert conditions(status)["Ready"] == ("False", "PodsCrashLooping")
    assert conditions(status)["Reconciling"][0] == "True"
    assert "fraud-stable-abc-1" in status["message"]


def test_a_pod_that_crashed_long_ago_does_not_count():
    recovered = pod(1, restarts=3, terminated_ago=timedelta(hours=2))
    assert conditions(derive(Observed(stable=deployment(), pods=(pod(0), recovered))))["Ready"][0] == "True"


def test_crash_loop_after_serving_is_degraded():
    serving = derive(healthy())
    looping = pod(1, ready=False, restarts=4, waiting=[ContainerWaiting("model-server", "CrashLoopBackOff", "back-off 40s")])
    status = derive(Observed(stable=deployment(ready=1), pods=(pod(0), looping)), previous=serving, now=NOW + timedelta(minutes=30))
    assert status["phase"] == "Degraded"
    assert "pod fraud-stable-abc-1 container model-server: CrashLoopBackOff" in status["message"]


def test_crash_loop_past_the_deadline_stalls_and_stays_stalled():
    looping = pod(1, ready=False, restarts=9, waiting=[ContainerWaiting("model-server", "CrashLoopBackOff")])
    observed = Observed(stable=deployment(ready=1), pods=(pod(0), looping))
    first = derive(observed)
    assert conditions(first)["Stalled"][0] == "False"

    late = derive(observed, previous=first, now=NOW + timedelta(seconds=601))
    assert conditions(late)["Stalled"] == ("True", "PodsCrashLooping")
    assert conditions(late)["Reconciling"][0] == "False"
    assert late["phase"] == "Failed"
    assert "still failing after 600s" in late["message"]

    # The clock restarting (Reconciling is now False) must not un-stall it.
    assert derive(observed, previous=late, now=NOW + timedelta(seconds=700)) == late


def test_pods_not_ready_past_the_deadline_stall():
    first = derive(Observed(stable=deployment(ready=0), pods=(pod(0, ready=False), pod(1, ready=False))))
    assert conditions(first)["Reconciling"] == ("True", "ReplicasNotReady")
    late = derive(Observed(stable=deployment(ready=0), pods=(pod(0, ready=False), pod(1, ready=False))),
                  previous=first, now=NOW + timedelta(seconds=601))
    assert conditions(late)["Stalled"] == ("True", "ProgressDeadlineExceeded")
    assert "0/2 replicas ready after 600s" in late["message"]
    assert "fraud-stable-abc-0" in late["message"]


def test_a_new_generation_restarts_the_deadline():
    first = derive(Observed(stable=deployment(ready=0)))
    later = derive(Observed(stable=deployment(ready=0)), previous=first, now=NOW + timedelta(seconds=601), generation=2)
    assert conditions(later)["Stalled"][0] == "False"
    reconciling = next(c for c in later["conditions"] if c["type"] == "Reconciling")
    assert reconciling["lastTransitionTime"] == "2025-03-01T12:10:01Z"
    assert reconciling["observedGeneration"] == 2


def test_deployment_controller_deadline_stalls():
    expired = DeploymentCondition("Progressing", "False", "ProgressDeadlineExceeded", "ReplicaSet has timed out")
    status = derive(Observed(stable=deployment(ready=1, conditions=[expired])))
    assert conditions(status)["Stalled"] == ("True", "ProgressDeadlineExceeded")


@pytest.mark.parametrize(
    ("reason", "expected"),
    [("ImagePullBackOff", "ImagePullFailed"), ("ErrImagePull", "ImagePullFailed"), ("CreateContainerConfigError", "ContainerConfigError")],
)
def test_pods_that_cannot_start_stall_at_once(reason, expected):
    stuck = pod(1, ready=False, waiting=[ContainerWaiting("model-server", reason, 'Back-off pulling image "nope:1"')])
    status = derive(Observed(stable=deployment(ready=1), pods=(pod(0), stuck)))
    assert conditions(status)["Stalled"] == ("True", expected)
    assert status["phase"] == "Failed"
    assert f"container model-server: {reason}" in status["message"]


def test_problems_of_old_revision_pods_do_not_count():
    old = pod(3, revision=OLD_REV, ready=False, waiting=[ContainerWaiting("model-server", "ImagePullBackOff")])
    assert conditions(derive(Observed(stable=deployment(), pods=(pod(0), pod(1), old))))["Ready"][0] == "True"


def test_invalid_spec_stalls_and_leaves_serving_alone():
    serving = derive(healthy())
    problem = InvalidSpec(["spec.autoscaling.minReplicas: must be <= maxReplicas (got 5 > 3)"])
    status = derive(healthy(), previous=serving, spec=problem, revision=None, generation=2, now=NOW + timedelta(minutes=1))
    assert conditions(status)["Stalled"] == ("True", "InvalidSpec")
    assert conditions(status)["Ready"] == ("False", "InvalidSpec")
    assert "spec.autoscaling.minReplicas: must be <= maxReplicas (got 5 > 3)" in status["message"]
    assert status["stable"] == serving["stable"]
    assert status["history"] == serving["history"]
    assert status["observedGeneration"] == 2
    assert status["phase"] == "Failed"


def test_transition_time_moves_only_when_status_changes():
    creating = derive(Observed())
    rolling = derive(Observed(stable=deployment(ready=0)), previous=creating, now=NOW + timedelta(seconds=30))
    ready = derive(healthy(), previous=rolling, now=NOW + timedelta(seconds=60))
    times = lambda s: {c["type"]: c["lastTransitionTime"] for c in s["conditions"]}  # noqa: E731
    assert times(rolling)["Reconciling"] == times(creating)["Reconciling"] == "2025-03-01T12:00:00Z"
    assert times(ready)["Ready"] == times(ready)["Reconciling"] == "2025-03-01T12:01:00Z"
    assert times(ready)["Stalled"] == "2025-03-01T12:00:00Z"


def test_history_keeps_the_last_ten_revisions():
    status = None
    for i in range(12):
        revision = f"{i:010x}"
        observed = Observed(stable=deployment(revision=revision), pods=())
        status = derive(observed, previous=status, revision=revision, now=NOW + timedelta(minutes=i))
    assert len(status["history"]) == 10
    assert [h["revision"] for h in status["history"]] == [f"{i:010x}" for i in range(2, 12)]


def test_canary_in_flight_is_not_ready_and_keeps_rollout_fields():
    previous = {"traffic": {"stable": 80, "canary": 20, "verified": True}, "rollout": {"step": 1, "totalSteps": 4}}
    observed = Observed(stable=deployment(revision=OLD_REV, version="v6"), canary=deployment(replicas=1, ready=1), pods=(pod(0),))
    status = derive(observed, previous=previous)
    assert conditions(status)["Ready"] == ("False", "CanaryInProgress")
    assert status["phase"] == "Canary"
    assert status["canary"]["revision"] == REV
    assert status["traffic"] == previous["traffic"]
    assert status["rollout"]["totalSteps"] == 4


def test_unreadable_previous_status_is_ignored():
    assert derive(healthy(), previous={"conditions": "garbage"}) == derive(healthy())


# Properties ---------------------------------------------------------------

waiting_reasons = st.sampled_from(["", "CrashLoopBackOff", "ImagePullBackOff", "ContainerCreating", "PodInitializing"])
pods = st.lists(
    st.builds(
        lambda i, ready, restarts, reason, minutes: pod(
            i, ready=ready, restarts=restarts,
            waiting=[ContainerWaiting("model-server", reason)] if reason else [],
            terminated_ago=timedelta(minutes=minutes) if restarts else None,
        ),
        st.integers(0, 5), st.booleans(), st.integers(0, 5), waiting_reasons, st.integers(0, 30),
    ),
    max_size=4,
)
deployments = st.one_of(
    st.none(),
    st.builds(
        lambda ready, replicas, current: deployment(revision=REV if current else OLD_REV, ready=min(ready, replicas), replicas=replicas),
        st.integers(0, 4), st.integers(0, 4), st.booleans(),
    ),
)


@settings(max_examples=150, deadline=None)
@given(deployments, pods, st.integers(0, 2000))
def test_derivation_is_idempotent(stable, pod_list, seconds_later):
    observed = Observed(stable=stable, pods=tuple(pod_list))
    first = derive(observed)
    # Same cluster, same instant: the identical dict, so nothing is written.
    assert derive(observed, previous=first) == first
    # Later, a condition whose status and reason did not change keeps its
    # transition time (messages may legitimately age, e.g. "crash-looping"
    # only counts recent restarts).
    later = derive(observed, previous=first, now=NOW + timedelta(seconds=seconds_later))
    before = {c["type"]: c for c in first["conditions"]}
    for cond in later["conditions"]:
        old = before[cond["type"]]
        if (old["status"], old["reason"]) == (cond["status"], cond["reason"]):
            assert cond["lastTransitionTime"] == old["lastTransitionTime"]


@settings(max_examples=150, deadline=None)
@given(deployments, pods)
def test_never_ready_while_a_pod_of_the_revision_crash_loops(stable, pod_list):
    status = derive(Observed(stable=stable, pods=tuple(pod_list)))
    if any(w.reason == "CrashLoopBackOff" for p in pod_list for w in p.waiting):
        assert conditions(status)["Ready"][0] == "False"
    assert sum(c["status"] == "True" for c in status["conditions"]) <= 1  # Ready, Reconciling, Stalled are exclusive


# Reading raw objects ------------------------------------------------------

def test_observe_deployment_from_a_raw_object():
    raw = {
        "metadata": {"name": "fraud-stable", "generation": 4, "labels": {"modeldeploy.io/revision": REV},
                     "annotations": {"modeldeploy.io/model-version": "v7"}},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 2,
                   "availableReplicas": 2,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]},
    }
    observed = observe_deployment(raw)
    assert (observed.revision, observed.model_version, observed.replicas, observed.ready_replicas) == (REV, "v7", 3, 2)
    assert observed.condition("Progressing").reason == "NewReplicaSetAvailable"
    assert observe_deployment(None) is None
    assert observe_deployment({"metadata": {"generation": 1}, "spec": {}}).ready_replicas == 0  # no status yet


def test_summarize_pod_from_a_raw_object():
    raw = {
        "metadata": {"name": "fraud-stable-x", "labels": {"modeldeploy.io/role": "stable", "modeldeploy.io/revision": REV}},
        "status": {
            "conditions": [{"type": "Ready", "status": "False"}],
            "initContainerStatuses": [{"name": "storage-initializer", "restartCount": 2,
                                       "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                                       "lastState": {"terminated": {"finishedAt": "2025-03-01T11:59:00Z"}}}],
            "containerStatuses": [{"name": "model-server", "restartCount": 0,
                                   "state": {"waiting": {"reason": "PodInitializing"}}}],
        },
    }
    summary = summarize_pod(raw)
    assert summary.role == "stable" and summary.revision == REV and summary.ready is False
    assert summary.restart_count == 2
    assert summary.waiting == (
        ContainerWaiting("storage-initializer", "CrashLoopBackOff", "back-off"),
        ContainerWaiting("model-server", "PodInitializing", ""),
    )
    assert summary.last_terminated_at == datetime(2025, 3, 1, 11, 59, tzinfo=timezone.utc)


def test_autoscaled_deployment_is_not_ready_below_min_replicas():
    spec = parse_spec(
        {"model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn"},
         "resources": {"requests": {"cpu": "100m"}},
         "autoscaling": {"minReplicas": 3, "maxReplicas": 5}},
        known_formats=TABLE.known_formats,
    )
    revision = compute_revision(spec, TABLE)
    # A fresh Deployment starts at 1 replica until the HPA raises it to 3.
    starting = derive(Observed(stable=deployment(revision=revision, ready=1, replicas=1)), spec=spec, revision=revision)
    assert conditions(starting)["Ready"] == ("False", "ReplicasNotReady")
    assert "1/3 replicas ready" in starting["message"]
    raised = derive(Observed(stable=deployment(revision=revision, ready=3, replicas=3)), spec=spec, revision=revision)
    assert conditions(raised)["Ready"] == ("True", "Serving")


# -- pods the scheduler cannot place (issue 11) ---------------------------------

GPU_MESSAGE = ("0/8 nodes are available: 2 Insufficient nvidia.com/gpu, 6 node(s) didn't match Pod's node "
               "affinity/selector. preemption: 0/8 nodes are available: 2 No preemption victims found for incoming "
               "pod, 6 Preemption is not helpful for scheduling.")
CLAIM_MESSAGE = ('0/7 nodes are available: persistentvolumeclaim "model-store" not found. preemption: 0/7 nodes '
                 'are available: 7 Preemption is not helpful for scheduling.')


def pending(i, message):
    return PodSummary(name=f"fraud-stable-abc-{i}", role="stable", revision=REV, ready=False, unschedulable=message)


def test_summarize_pod_keeps_the_schedulers_message_while_it_cannot_place_the_pod():
    raw = {"metadata": {"name": "fraud-stable-x", "labels": {"modeldeploy.io/role": "stable"}},
           "status": {"phase": "Pending", "conditions": [
               {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": GPU_MESSAGE + "\n"}]}}
    assert summarize_pod(raw).unschedulable == GPU_MESSAGE[:300]
    scheduled = {**raw, "status": {"conditions": [{"type": "PodScheduled", "status": "True"}]}}
    assert summarize_pod(scheduled).unschedulable == ""
    # Gated pods (SchedulingGated) wait on purpose: not the scheduler's refusal.
    gated = {**raw, "status": {"conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}
    assert summarize_pod(gated).unschedulable == ""


@pytest.mark.parametrize(("message", "reason"), [(GPU_MESSAGE, "InsufficientCapacity"),
                                                 ("0/6 nodes are available: 6 Too many pods.", "InsufficientCapacity"),
                                                 (CLAIM_MESSAGE, "Unschedulable")])
def test_a_first_deploy_the_scheduler_cannot_place_says_why_at_once(message, reason):
    status = derive(Observed(stable=deployment(ready=0), pods=(pending(0, message), pending(1, message))))
    assert conditions(status)["Ready"] == ("False", reason)
    assert conditions(status)["Reconciling"] == ("True", reason)
    assert conditions(status)["Stalled"][0] == "False"
    assert status["phase"] == "Pending"
    assert status["message"] == (f"pod fraud-stable-abc-0 cannot be scheduled: {message[:300]} "
                                 "(2 pods unschedulable)")


def test_a_model_still_unschedulable_at_the_deadline_stalls_and_stays_stalled():
    observed = Observed(stable=deployment(ready=0), pods=(pending(0, CLAIM_MESSAGE),))
    first = derive(observed)
    late = derive(observed, previous=first, now=NOW + timedelta(seconds=601))
    assert conditions(late)["Stalled"] == ("True", "Unschedulable")
    assert late["phase"] == "Failed"
    assert late["message"].endswith("still unschedulable after 600s (spec.rollout.progressDeadlineSeconds)")
    assert derive(observed, previous=late, now=NOW + timedelta(seconds=700)) == late
    # The claim appears, the pod is placed and turns ready: the stall clears by itself.
    assert conditions(derive(healthy(), previous=late, now=NOW + timedelta(seconds=800)))["Ready"][0] == "True"


def test_a_scale_up_the_cluster_has_no_room_for_says_so_while_the_model_serves():
    scaled = deployment(ready=2, replicas=4)
    status = derive(Observed(stable=scaled, pods=(pod(0), pod(1), pending(2, GPU_MESSAGE), pending(3, GPU_MESSAGE))),
                    previous=derive(healthy()))
    assert conditions(status)["Ready"] == ("False", "InsufficientCapacity")
    assert "Insufficient nvidia.com/gpu" in status["message"]
    assert status["phase"] == "Degraded" and status["stable"]["readyReplicas"] == 2


def test_pods_of_an_old_revision_waiting_for_room_do_not_count():
    old = PodSummary(name="fraud-stable-old-0", role="stable", revision=OLD_REV, ready=False, unschedulable=GPU_MESSAGE)
    assert conditions(derive(Observed(stable=deployment(), pods=(pod(0), pod(1), old))))["Ready"][0] == "True"


# -- slow model loads (issue 11) ------------------------------------------------------


def loading(i, scheduled_ago, budget=120, started=False):
    return PodSummary(name=f"fraud-stable-abc-{i}", role="stable", revision=REV, ready=False,
                      scheduled_at=NOW - timedelta(seconds=scheduled_ago), started=started,
                      load_timeout_seconds=budget)


def test_summarize_pod_reads_scheduling_start_and_the_load_budget_off_the_pod():
    raw = {"metadata": {"name": "p", "labels": {}},
           "spec": {"containers": [{"name": "model-server", "startupProbe": {"periodSeconds": 10, "failureThreshold": 12}}]},
           "status": {"conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": "2025-03-01T11:58:00Z"}],
                      "containerStatuses": [{"name": "model-server", "started": False, "restartCount": 0,
                                             "state": {"running": {}}}]}}
    summary = summarize_pod(raw)
    assert summary.scheduled_at == datetime(2025, 3, 1, 11, 58, tzinfo=timezone.utc)
    assert summary.load_timeout_seconds == 120 and summary.started is False and summary.loading
    raw["status"]["containerStatuses"][0]["started"] = True
    assert summarize_pod(raw).started and not summarize_pod(raw).loading


def test_pods_loading_their_model_say_since_when_not_how_long():
    observed = Observed(stable=deployment(ready=0), pods=(loading(0, 30), loading(1, 45)))
    status = derive(observed)
    assert conditions(status)["Ready"] == ("False", "LoadingModel")
    assert status["message"] == ("0/2 replicas ready; pod fraud-stable-abc-1 loading its model since "
                                 "2025-03-01T11:59:15Z, loadTimeout 2m (2 pods loading)")
    # A moment, not an elapsed time: a later pass writes the same status.
    assert derive(observed, previous=status, now=NOW + timedelta(seconds=20)) == status


def test_a_pod_past_its_load_timeout_did_not_load_and_is_not_called_a_crash_loop():
    restarted = replace(loading(0, 130), restart_count=2, last_terminated_at=NOW - timedelta(seconds=5),
                        waiting=(ContainerWaiting("model-server", "CrashLoopBackOff"),))
    status = derive(Observed(stable=deployment(ready=0), pods=(restarted,)))
    assert conditions(status)["Stalled"] == ("True", "ModelLoadTimeout")
    assert status["message"] == ("pod fraud-stable-abc-0 did not load its model within loadTimeout 2m of being "
                                 "scheduled (at 2025-03-01T11:57:50Z)")
    assert status["phase"] == "Failed"


def test_a_slow_load_within_its_budget_outlives_progress_deadline_seconds():
    spec = parse_spec({"model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn"}, "replicas": 2,
                       "rollout": {"progressDeadlineSeconds": 60}}, known_formats=TABLE.known_formats)
    first = derive(Observed(stable=deployment(ready=0), pods=(loading(0, 0, budget=1800),)), spec=spec)
    later = NOW + timedelta(seconds=600)
    slow = replace(loading(0, 0, budget=1800), scheduled_at=NOW)
    status = derive(Observed(stable=deployment(ready=0), pods=(slow,)), previous=first, now=later, spec=spec)
    assert conditions(status)["Stalled"][0] == "False" and conditions(status)["Ready"][1] == "LoadingModel"


def test_the_progress_deadline_counts_from_a_pods_scheduling_not_from_the_spec_change():
    waiting = PodSummary(name="fraud-stable-abc-0", role="stable", revision=REV, ready=False,
                         unschedulable="0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")
    first = derive(Observed(stable=deployment(ready=0), pods=(waiting,)))
    # Placed 9 minutes later, running but not ready (no startup probe: started):
    # 2 minutes after that the spec's deadline has passed, the pod's has not.
    placed = PodSummary(name="fraud-stable-abc-0", role="stable", revision=REV, ready=False, started=True,
                        scheduled_at=NOW + timedelta(minutes=9))
    status = derive(Observed(stable=deployment(ready=0), pods=(placed,)), previous=first,
                    now=NOW + timedelta(minutes=11))
    assert conditions(status)["Stalled"][0] == "False"
    late = derive(Observed(stable=deployment(ready=0), pods=(placed,)), previous=status,
                  now=NOW + timedelta(minutes=19, seconds=1))
    assert conditions(late)["Stalled"] == ("True", "ProgressDeadlineExceeded")


def test_pods_replaced_again_and_again_do_not_push_the_deadline_out_forever():
    first = derive(Observed(stable=deployment(ready=0), pods=(pod(0, ready=False),)))
    # Each look finds a pod placed a minute ago (say, evicted and replaced):
    # only pods placed within the first deadline get their own.
    later = first
    for minute in range(11, 30):
        fresh = replace(pod(0, ready=False), scheduled_at=NOW + timedelta(minutes=minute - 1))
        later = derive(Observed(stable=deployment(ready=0), pods=(fresh,)), previous=later,
                       now=NOW + timedelta(minutes=minute))
        if conditions(later)["Stalled"][0] == "True":
            break
    # The one placed at minute 10 still counted at minute 11; its successor placed at minute 11 does not.
    assert conditions(later)["Stalled"] == ("True", "ProgressDeadlineExceeded") and minute == 12


def test_a_model_that_did_not_load_stays_stalled_while_its_restarts_come_and_go():
    """Found by the property test: a crash-looping pod under a startup probe
    flips between "not started" (did not load) and "Ready for a moment"
    (crash loop, then within the deadline clock restarted by the flip): the
    stall came and went, and the rollout never ended."""
    hung = replace(loading(0, 700, budget=600), restart_count=3, last_terminated_at=NOW - timedelta(seconds=30))
    stalled = derive(Observed(stable=deployment(ready=0), pods=(hung,)))
    assert conditions(stalled)["Stalled"] == ("True", "ModelLoadTimeout")
    between = replace(hung, ready=True, started=True, scheduled_at=hung.scheduled_at)
    later = derive(Observed(stable=deployment(ready=1), pods=(between,)), previous=stalled,
                   now=NOW + timedelta(seconds=15))
    assert conditions(later)["Stalled"][0] == "True", conditions(later)


@pytest.mark.parametrize("strategy, replicas, expected", [
    ({"type": "Recreate"}, 3, 3),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}, 4, 0),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}, 3, 1),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "50%", "maxSurge": 0}}, 3, 1),
    ({}, 4, 1),  # the API server's defaults: 25% and 25%
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": "0%"}}, 2, 1),  # both 0: 1
])
def test_a_deployments_max_unavailable_is_resolved_as_its_controller_resolves_it(strategy, replicas, expected):
    body = {"metadata": {"labels": {}}, "spec": {"replicas": replicas, "strategy": strategy}}
    assert observe_deployment(body).max_unavailable == expected


def test_ready_pods_behind_the_service_count_the_old_ones_a_rolling_update_keeps():
    from modeldeploy.status.observed import ready_after_rollout

    rolling = replace(deployment(ready=3, replicas=3), max_unavailable=1)
    old = [pod(i, revision=OLD_REV) for i in range(3)]
    # Re-templated, no new pod ready yet: it takes one old pod away (3 - 1).
    assert ready_after_rollout(old, "stable", rolling) == 2
    # One new pod ready: one old pod stays with it, 3 - 1 ready in all.
    assert ready_after_rollout([*old[:2], pod(5)], "stable", rolling) == 2
    # Surge-style (maxUnavailable 0): every old ready pod stays, up to its size.
    assert ready_after_rollout([*old, pod(5)], "stable", replace(rolling, max_unavailable=0)) == 3
    # A write that gives it maxUnavailable 1 counts as such.
    assert ready_after_rollout(old, "stable", replace(rolling, max_unavailable=0), unavailable=1) == 2
    # Settled: its own pods up to its size; no pod in the cache yet: its readyReplicas.
    assert ready_after_rollout([pod(i) for i in range(3)], "stable", rolling, replicas=2) == 2
    assert ready_after_rollout([], "stable", rolling) == 3
