"""Built-in checks, run on every pass while a canary is tried out, with or
without metric analysis: pods ready in time, no crash loop, restarts not rising."""

from dataclasses import dataclass, replace
from datetime import timedelta

from .. import conditions as c
from ..api.status import DecisionRecord
from ..status.health import did_not_load, overdue_loads, within_own_deadline as _within_own_deadline
from ..status.observed import PodSummary
from ..status.transitions import format_time
from .analysis import FAIL, analysis_spec
from .inputs import Inputs
from .state import RolloutState

READY_CHECK = "canary-ready"
SCHEDULING_CHECK = "canary-schedulable"
LOAD_CHECK = "model-load"
CRASH_LOOP_CHECK = "crash-loop"
RESTARTS_CHECK = "restarts"


@dataclass(frozen=True)
class CheckOutcome:
    state: RolloutState  # with not_ready_since, restarts_seen, failed_checks, decisions updated
    failure: str | None = None  # set: roll back, with this as the reason


def canary_pods(inputs: Inputs, state: RolloutState) -> list[PodSummary]:
    revision = state.canary.revision if state.canary else None
    return [p for p in inputs.observed.pods if p.role == "canary" and p.revision == revision]


def canary_ready_replicas(inputs: Inputs, state: RolloutState) -> int:
    """Ready pods of the canary's revision, counted pod by pod (issue 9,
    defect 6): while the canary Deployment replaces a superseded canary's
    pods, the Deployment's readyReplicas still counts the old ones, and
    weight must never go to them."""
    return len([pod for pod in canary_pods(inputs, state) if pod.ready])


def run_builtin_checks(inputs: Inputs, state: RolloutState, wanted: int) -> CheckOutcome:
    """`wanted`: canary pods the current step needs ready."""
    for check in (_load_timeout, _crash_loop, _schedulable, _restarts, _readiness):
        outcome = check(inputs, state, wanted)
        if outcome.failure is not None:
            return outcome
        state = outcome.state
    return CheckOutcome(state)


def _record(inputs: Inputs, metric: str, value: float | None, bound: str, action: str) -> DecisionRecord:
    return DecisionRecord(time=format_time(inputs.now), metric=metric, value=value, bound=bound, verdict=FAIL, action=action)


def _crash_loop(inputs: Inputs, state: RolloutState, wanted: int) -> CheckOutcome:
    for pod in canary_pods(inputs, state):
        for waiting in pod.waiting:
            if waiting.reason == c.CRASH_LOOP_WAITING_REASON:
                why = f"canary pod {pod.name} container {waiting.container} is crash-looping ({pod.restart_count} restarts)"
                why += "".join(f"; {t.describe()}" for t in pod.terminations if t.container == waiting.container)
                record = _record(inputs, CRASH_LOOP_CHECK, pod.restart_count, "no CrashLoopBackOff", "Rollback")
                return CheckOutcome(replace(state, decisions=state.with_decisions(record)), why)
    return CheckOutcome(state)


def _load_timeout(inputs: Inputs, state: RolloutState, wanted: int) -> CheckOutcome:
    """A canary pod still loading its model past loadTimeout: rolled back,
    said as such (before the crash-loop check: the startup probe restarts a
    container that did not load in time, and that is no crash)."""
    overdue = overdue_loads(canary_pods(inputs, state), inputs.now)
    if not overdue:
        return CheckOutcome(state)
    pod = overdue[0]
    record = _record(inputs, LOAD_CHECK, pod.load_timeout_seconds, f"ready within {pod.load_timeout_seconds}s of "
                     "being scheduled (loadTimeout)", "Rollback")
    return CheckOutcome(replace(state, decisions=state.with_decisions(record)), f"canary {did_not_load(pod)}")


def _schedulable(inputs: Inputs, state: RolloutState, wanted: int) -> CheckOutcome:
    """A canary pod the scheduler cannot place: rolled back at once under
    capacity.onUnschedulable Rollback; under Wait, the readiness deadline
    bounds the wait (and its message carries the scheduler's)."""
    if inputs.spec.rollout.capacity.on_unschedulable != "Rollback":
        return CheckOutcome(state)
    waiting = _unschedulable(inputs, state)
    if not waiting:
        return CheckOutcome(state)
    pod = waiting[0]
    record = _record(inputs, SCHEDULING_CHECK, len(waiting), "every canary pod scheduled", "Rollback")
    why = (f"canary pod {pod.name} cannot be scheduled (spec.rollout.capacity.onUnschedulable: Rollback): "
           f"{pod.unschedulable}")
    return CheckOutcome(replace(state, decisions=state.with_decisions(record)), why)


def last_progress(pods: list[PodSummary], since):
    """The later of `since` and the moment the last of `pods` turned Ready."""
    moments = [pod.ready_since for pod in pods if pod.ready and pod.ready_since is not None]
    return max([since, *moments])


def _unschedulable(inputs: Inputs, state: RolloutState) -> list[PodSummary]:
    return sorted((pod for pod in canary_pods(inputs, state) if pod.unschedulable), key=lambda pod: pod.name)


def _restarts(inputs: Inputs, state: RolloutState, wanted: int) -> CheckOutcome:
    restarts = sum(p.restart_count for p in canary_pods(inputs, state))
    if restarts <= state.restarts_seen:
        # Fewer after pods were replaced: count from the new baseline.
        return CheckOutcome(replace(state, restarts_seen=restarts))
    limit = analysis_spec(inputs).failure_limit
    failed = state.failed_checks + 1
    over = failed > limit
    action = "Rollback" if over else f"Failed check {failed} of {limit} tolerated"
    record = _record(inputs, RESTARTS_CHECK, restarts, f"restarts <= {state.restarts_seen}", action)
    state = replace(state, restarts_seen=restarts, failed_checks=failed, decisions=state.with_decisions(record))
    if over:
        why = f"canary containers restarted ({restarts} restarts; failed checks {failed} > failureLimit {limit})"
        why += "".join(f"; pod {p.name} {t.describe()}" for p in canary_pods(inputs, state) for t in p.terminations)
        return CheckOutcome(state, why)
    return CheckOutcome(state)


def _readiness(inputs: Inputs, state: RolloutState, wanted: int) -> CheckOutcome:
    ready = canary_ready_replicas(inputs, state)
    if ready >= wanted:
        return CheckOutcome(replace(state, not_ready_since=None))
    since = state.not_ready_since or inputs.now
    state = replace(state, not_ready_since=since)
    deadline = inputs.spec.rollout.progress_deadline_seconds
    if inputs.spec.rollout.capacity.mode == "Replace":
        # The canary grows a pod at a time, each waiting for room a stable
        # pod leaves: as a Deployment's own deadline, it counts from the
        # last progress (a canary pod turning Ready), not from the step's start.
        since = last_progress(canary_pods(inputs, state), since)
    if inputs.now - since <= timedelta(seconds=deadline):
        return CheckOutcome(state)
    if _within_own_deadline(canary_pods(inputs, state), inputs.now, deadline, since):
        return CheckOutcome(state)  # a pod that waited for a node gets its whole time to load
    record = _record(inputs, READY_CHECK, ready, f"ready >= {wanted} within {deadline}s", "Rollback")
    reasons = sorted({w.reason for p in canary_pods(inputs, state) for w in p.waiting if w.reason})
    detail = f" (pods waiting: {', '.join(reasons)})" if reasons else ""
    unschedulable = _unschedulable(inputs, state)
    if unschedulable:
        detail += f"; pod {unschedulable[0].name} cannot be scheduled: {unschedulable[0].unschedulable}"
    why = f"canary pods not ready within {deadline}s (spec.rollout.progressDeadlineSeconds): {ready}/{wanted} ready{detail}"
    return CheckOutcome(replace(state, decisions=state.with_decisions(record)), why)
