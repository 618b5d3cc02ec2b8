"""Smoke-test checks (spec.rollout.checks, issue 12 item 4), pure.

A check gates one point of a canary's walk through its steps (a "gate": the
index of the step it must pass before; len(steps) is promotion):

    PreRollout     gate 0, and more: no client traffic (weight, mirror,
                   header route) reaches the canary until every PreRollout
                   check passed
    Step N         gate N-1: step N (1-based) acts only once it passed
    PrePromotion   gate len(steps): promotion waits for it

At a gate the checks run one at a time, in spec order. A check starts once
the canary has a ready pod (behind its canary Service) and runs as a Job
(builders/job.py) whose name derives from the model, the check, the canary
revision and the canary's start, so an operator that restarts finds the Job
it made. The check passes when the Job completes, fails when the Job fails,
and times out when the Job's activeDeadlineSeconds (the check's timeout)
ends it or, as a backstop, when it has not finished TIMEOUT_GRACE_SECONDS
after that. A failed or timed-out check rolls the canary back. Outcomes are
kept in the rollout's state (passedChecks, check), never only in the Jobs,
which the operator prunes to the last KEEP_JOBS per check.

The promote annotation skips steps (and their Step N checks), never a
PreRollout or PrePromotion check: it moves the canary to the promotion gate,
where those still outstanding run first.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from ..api.durations import format_duration
from ..api.rollout import PRE_PROMOTION, PRE_ROLLOUT, RolloutCheck
from ..api.spec import ModelDeploymentSpec
from ..api.status import DecisionRecord
from ..builders.job import CHECK, build_check_job, check_job_name
from ..builders.labels import NAME
from ..builders.ownership import Owner
from ..status.observed import JobSummary, summarize_job
from ..status.transitions import format_time
from .blue_green import PREVIEW, effective_steps, switch_index
from .decision import NORMAL, WARNING, Event
from .inputs import Inputs
from .state import ACTIVE, CheckRun, RolloutState

CHECK_FAILED = "CheckFailed"
CHECK_PASSED = "CheckPassed"
CHECK_STARTED = "CheckStarted"
PASSED, FAILED, TIMED_OUT = "Passed", "Failed", "TimedOut"
# Finished Jobs kept per check name (their pods' logs say why); older ones are deleted.
KEEP_JOBS = 3
# A Job not finished this long after its own deadline (the Job controller
# never ran it: no room, quota, or no controller) times out all the same.
TIMEOUT_GRACE_SECONDS = 30
POLL_SECONDS = 5.0


@dataclass(frozen=True)
class Gate:
    state: RolloutState
    open: bool  # every check at this gate passed: the rollout may go on
    failure: str | None = None  # a check failed or timed out: roll back with this
    events: tuple[Event, ...] = ()


def checks_at(spec: ModelDeploymentSpec, state: RolloutState, gate: int) -> list[RolloutCheck]:
    """The checks a canary must pass at `gate`: those placed there, and a
    PreRollout check not passed yet also at any later gate while the canary
    has had no client traffic (a check added to the spec mid-flight), and at
    promotion (the promote annotation skipped to it)."""
    steps = effective_steps(spec.rollout)
    untouched = state.weight == 0 and state.mirror == 0
    return [check for check in spec.rollout.checks
            if gate_of(check, steps) == gate or (check.at == PRE_ROLLOUT and (gate >= len(steps) or untouched))]


def gate_of(check: RolloutCheck, steps: tuple) -> int:
    """The gate of `check` among the steps a rollout walks. BlueGreen's
    PrePromotion gates its switch: the preview is tested before any client
    request reaches it."""
    if check.at == PRE_PROMOTION and any(step is PREVIEW for step in steps):
        return switch_index(steps)
    return check.gate(len(steps))


def outstanding(spec: ModelDeploymentSpec, state: RolloutState, gate: int) -> bool:
    return any(check.name not in state.passed_checks for check in checks_at(spec, state, gate))


def pre_rollout_passed(spec: ModelDeploymentSpec, state: RolloutState) -> bool:
    """No client traffic of any kind reaches a canary before this."""
    return all(check.name in state.passed_checks for check in spec.rollout.checks if check.at == PRE_ROLLOUT)


def needs_a_pod(spec: ModelDeploymentSpec, state: RolloutState, gate: int) -> bool:
    """A check is to run at this gate: the canary needs a ready pod for it."""
    return bool(spec.rollout.checks) and outstanding(spec, state, gate)


def job_name(inputs: Inputs, state: RolloutState, check: str) -> str:
    started = format_time(state.canary_started_at) if state.canary_started_at is not None else ""
    return check_job_name(inputs.name, check, state.canary.revision, started)


def run_gate(inputs: Inputs, state: RolloutState, gate: int, *, pod_ready: bool) -> Gate:
    """Start, observe and judge the checks at `gate`, one at a time."""
    spec, now = inputs.spec, inputs.now
    # The check running now is judged first, whatever gate it is at (the
    # promote annotation may have moved the canary past it): a check that
    # failed never lets the canary go on.
    judged = _judge(inputs, state)
    if judged.failure is not None or judged.state.check is not None:
        return replace(judged, open=False)  # failed, or still running: a started check finishes first
    state, events = judged.state, list(judged.events)
    for check in checks_at(spec, state, gate):
        if check.name in state.passed_checks:
            continue
        name = job_name(inputs, state, check.name)
        if not pod_ready:
            return Gate(state, False, events=tuple(events))
        state = replace(state, check=CheckRun(name=check.name, job=name, at=check.at, started_at=now,
                                              timeout_seconds=check.timeout_seconds))
        events.append(Event(NORMAL, CHECK_STARTED, f"check {check.name} ({check.at}) started: Job {name} "
                                                   f"against {_describe(state)}"))
        return Gate(state, False, events=tuple(events))
    return Gate(replace(state, check=None), True, events=tuple(events))


def _judge(inputs: Inputs, state: RolloutState) -> Gate:
    """The running check's outcome, if its Job has one: Passed (recorded,
    the check cleared) or Failed/TimedOut (`failure`). Judged from what the
    state recorded when it started, even if the spec has dropped the check
    since: a started check always finishes."""
    run = state.check
    if run is None or state.canary is None:
        return Gate(state, True)
    job = next((j for j in inputs.observed.jobs if j.name == run.job), None)
    outcome, why = _outcome(job, run, inputs.now)
    if outcome is None:
        return Gate(state, True)
    record = DecisionRecord(time=format_time(inputs.now), metric=f"check/{run.name}", job=run.job,
                            outcome=outcome, verdict="Pass" if outcome == PASSED else "Fail",
                            action="Continue" if outcome == PASSED else "Rollback", message=why)
    state = replace(state, check=None, decisions=state.with_decisions(record))
    if outcome != PASSED:
        failure = f"check {run.name} ({run.at}) {why}"
        return Gate(state, False, failure=failure,
                    events=(Event(WARNING, CHECK_FAILED, f"{failure}; rolling back {_describe(state)}"),))
    state = replace(state, passed_checks=(*state.passed_checks, run.name))
    return Gate(state, True, events=(Event(NORMAL, CHECK_PASSED, f"check {run.name} ({run.at}) passed: Job "
                                                                 f"{run.job} succeeded"),))


def _outcome(job: JobSummary | None, run: CheckRun, now) -> tuple[str | None, str]:
    if job is not None and job.condition("Complete") is not None:
        return PASSED, f"Job {run.job} succeeded"
    if job is not None and job.condition("Failed") is not None:
        failed = job.condition("Failed")
        if failed.reason == "DeadlineExceeded":
            return TIMED_OUT, f"timed out: Job {run.job} did not finish within {format_duration(run.timeout_seconds)}"
        said = ": ".join(part for part in (failed.reason, " ".join(failed.message.split())[:200]) if part)
        detail = f" ({said})" if said else ""
        return FAILED, f"failed: Job {run.job} failed{detail}"
    if now - run.started_at > timedelta(seconds=run.timeout_seconds + TIMEOUT_GRACE_SECONDS):
        return TIMED_OUT, (f"timed out: Job {run.job} did not finish within {format_duration(run.timeout_seconds)}"
                           f"{'' if job is not None else ' (the Job is gone)'}")
    return None, ""


def requeue(inputs: Inputs, state: RolloutState) -> float | None:
    """While a check runs: the Job's changes come as watch events; this
    catches the timeout backstop."""
    if state.check is None:
        gate = min(state.step, len(effective_steps(inputs.spec.rollout)))
        return POLL_SECONDS if state.stage in ACTIVE and outstanding(inputs.spec, state, gate) else None
    end = state.check.started_at + timedelta(seconds=state.check.timeout_seconds + TIMEOUT_GRACE_SECONDS)
    return max(1.0, min(30.0, (end - inputs.now).total_seconds() + 1))


def _describe(state: RolloutState) -> str:
    canary = state.canary
    return f"{canary.model_version} (revision {canary.revision})" if canary is not None else "the canary"


# -- the plan's side: the Jobs to have, the Jobs to delete -----------------------


def observed_jobs(name: str, children: Mapping[tuple[str, str], Mapping[str, Any]]) -> tuple[JobSummary, ...]:
    return tuple(summarize_job(body) for (kind, _), body in sorted(children.items())
                 if kind == "Job" and ((body.get("metadata") or {}).get("labels") or {}).get(NAME) == name)


def wanted_job(owner: Owner, spec: ModelDeploymentSpec, state: RolloutState) -> dict[str, Any] | None:
    """The Job of the check running now, if any."""
    if state.stage not in ACTIVE or state.check is None or state.canary is None:
        return None
    check = next((c for c in spec.rollout.checks if c.name == state.check.name), None)
    if check is None:
        return None
    return build_check_job(owner, check=check.name, job_name=state.check.job, template=check.job.template,
                           timeout_seconds=check.timeout_seconds, revision=state.canary.revision,
                           model_version=state.canary.model_version)


def kept_jobs(state: RolloutState, wanted: Iterable[tuple[str, str]]) -> set[str]:
    """Jobs never pruned: the desired ones and the running check's (whose
    check the spec may have dropped: it still finishes)."""
    kept = {name for kind, name in wanted if kind == "Job"}
    if state.stage in ACTIVE and state.check is not None:
        kept.add(state.check.job)
    return kept


def jobs_to_prune(jobs: Iterable[JobSummary], wanted: set[str], keep: int = KEEP_JOBS) -> list[str]:
    """Check Jobs to delete: one still running that no check waits on any
    more (the canary ended, or moved on), and beyond the newest `keep` per
    check name the older ones. The wanted Job is never deleted."""
    doomed: list[str] = []
    by_check: dict[str, list[JobSummary]] = {}
    for job in jobs:
        if job.name in wanted:
            continue
        finished = job.condition("Complete") is not None or job.condition("Failed") is not None
        if not finished:
            doomed.append(job.name)
            continue
        by_check.setdefault(job.labels.get(CHECK, ""), []).append(job)
    for finished in by_check.values():
        finished.sort(key=lambda j: (j.created_at is None, j.created_at, j.name), reverse=True)
        doomed += [job.name for job in finished[keep:]]
    return sorted(doomed)


__all__ = ["Gate", "PRE_PROMOTION", "PRE_ROLLOUT", "checks_at", "jobs_to_prune", "needs_a_pod", "observed_jobs",
           "outstanding", "pre_rollout_passed", "requeue", "run_gate", "wanted_job"]
