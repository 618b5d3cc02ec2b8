"""RolloutState: the machine's memory, read from and written back to status.

Everything the machine needs to resume after an operator restart lives here
(and so in status): the stage, the step and when it started, the weight set,
failed checks, analysis errors in a row, the analysis clock, the stable
snapshot and the last rollback.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ..api.registry import RegistryRecord
from ..api.status import MAX_DECISIONS, ModelDeploymentStatus
from ..api.status import DecisionRecord, PausedBy, Stage
from ..status.transitions import parse_time


ACTIVE = (Stage.CANARY, Stage.PROMOTING)


@dataclass(frozen=True)
class StableRevision:
    """The revision the stable Deployment renders, and the spec fields it came from."""

    revision: str
    snapshot: Mapping[str, Any]  # rollout.snapshot.take_snapshot(spec)
    runtime: Mapping[str, Any] | None = None  # runtimes.runtime_to_wire: what it was rolled out with

    @property
    def model_version(self) -> str:
        return str((self.snapshot.get("model") or {}).get("version", ""))


@dataclass(frozen=True)
class CanaryRevision:
    """The revision tried out: in flight, or the one rolled back."""

    revision: str
    model_version: str
    uri: str
    registry: RegistryRecord | None = None  # the registry version, for a models:/ URI


@dataclass(frozen=True)
class CheckRun:
    """A smoke-test check (rollout.checks) whose Job runs now."""

    name: str
    job: str
    at: str
    started_at: datetime
    # The check's timeout when it started: a started check is judged (and
    # times out) even if the spec drops it meanwhile.
    timeout_seconds: int = 300


@dataclass(frozen=True)
class RolloutState:
    stage: Stage = Stage.STABLE
    stable: StableRevision | None = None  # None until a first revision was taken
    canary: CanaryRevision | None = None
    step: int = 0  # index of the step in progress; len(steps) once all passed
    step_started_at: datetime | None = None
    weight: int = 0  # canary percent the rollout has set
    mirror: int = 0  # percent of requests the last setMirror step copies to the canary (stage Canary only)
    failed_checks: int = 0
    consecutive_errors: int = 0  # analysis rounds in a row with a failed query
    stable_floor: int | None = None  # autoscaling: stable's count at the canary's start, held until it ends
    paused_reason: str | None = None
    paused_by: PausedBy | None = None
    restarts_seen: int = 0
    last_analysis_at: datetime | None = None  # None: the canary has not taken traffic yet
    not_ready_since: datetime | None = None
    message: str | None = None  # why it rolled back
    canary_started_at: datetime | None = None  # the canary's start: its check Jobs' names derive from it
    check: CheckRun | None = None  # the smoke-test check running now (rollout/smoke.py)
    passed_checks: tuple[str, ...] = ()  # rollout.checks this canary passed
    decisions: tuple[DecisionRecord, ...] = ()

    def with_decisions(self, *records: DecisionRecord) -> tuple[DecisionRecord, ...]:
        """The decisions with `records` appended, keeping the last MAX_DECISIONS."""
        return (*self.decisions, *records)[-MAX_DECISIONS:]


def read_state(status: Mapping[str, Any] | None) -> RolloutState:
    """The state stored in a ModelDeployment's status.

    A status the operator cannot read (hand-edited) gives the empty state: the
    spec's revision is then taken as stable, like a first revision.
    """
    try:
        stored = ModelDeploymentStatus.model_validate(status or {})
    except ValidationError:
        return RolloutState()
    stable = None
    if stored.stable is not None and stored.stable.revision and stored.stable.spec is not None:
        stable = StableRevision(revision=stored.stable.revision, snapshot=stored.stable.spec,
                                runtime=stored.stable.runtime)
    progress = stored.rollout
    if stable is None or progress is None:
        return RolloutState(stable=stable)
    canary = None
    if progress.revision:
        canary = CanaryRevision(progress.revision, progress.model_version or "", progress.uri or "",
                                progress.registry)
    stage = Stage(progress.stage) if progress.stage else Stage.STABLE
    if stage != Stage.STABLE and canary is None:
        stage = Stage.STABLE  # nothing to resume without knowing which revision
    return RolloutState(
        stage=stage,
        stable=stable,
        canary=canary,
        step=progress.step,
        step_started_at=_time(progress.step_started_at),
        weight=progress.weight if stage in ACTIVE else 0,
        mirror=(progress.mirror or 0) if stage == Stage.CANARY else 0,
        failed_checks=progress.failed_checks,
        consecutive_errors=progress.consecutive_errors,
        stable_floor=progress.stable_floor if stage in ACTIVE else None,
        paused_reason=progress.paused_reason,
        paused_by=_paused_by(progress),
        restarts_seen=progress.restarts_seen,
        last_analysis_at=_time(progress.last_analysis_at),
        not_ready_since=_time(progress.not_ready_since),
        message=progress.message,
        canary_started_at=_time(progress.canary_started_at),
        check=_check(progress) if stage in ACTIVE else None,
        passed_checks=tuple(progress.passed_checks),
        decisions=tuple(progress.decisions[-MAX_DECISIONS:]),
    )


def _check(progress) -> CheckRun | None:
    check = progress.check
    started = _time(check.started_at) if check is not None else None
    if check is None or started is None:
        return None
    return CheckRun(name=check.name, job=check.job, at=check.at or "", started_at=started,
                    timeout_seconds=check.timeout_seconds or 300)


def _paused_by(progress) -> PausedBy | None:
    if progress.paused_by is not None or not progress.paused_reason:
        return progress.paused_by
    # Written before pausedBy existed: the analysis's pause reason said so.
    return PausedBy.ANALYSIS if progress.paused_reason.startswith("analysis inconclusive") else PausedBy.APPROVAL


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None
