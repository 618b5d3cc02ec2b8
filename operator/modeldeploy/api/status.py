"""`status` of a ModelDeployment, written only by the operator.

Conditions follow kstatus (Ready, Reconciling, Stalled) so generic tools such as
Argo CD, Flux and `kubectl wait` understand the resource without custom code.
"""

import math
from enum import Enum
from typing import Any, Literal

from pydantic import Field, field_validator

from .base import StatusModel
from .registry import ModelStatus, RegistryRecord

MAX_DECISIONS = 20
MAX_HISTORY = 10


class Phase(str, Enum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    CANARY = "Canary"
    SHADOW = "Shadow"  # a canary that sees only copies of requests (setMirror at 0% weight)
    PREVIEW = "Preview"  # BlueGreen: the new revision up behind <name>-preview, before the switch
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    ROLLED_BACK = "RolledBack"
    CHECK_RUNNING = "CheckRunning"  # a smoke-test Job (rollout.checks) gates the canary


class Stage(str, Enum):
    """Where a rollout is (status.rollout.stage): one spelling for the
    machine, the phase, the CLI and the CRD."""

    STABLE = "Stable"  # one revision serves; nothing in flight
    CANARY = "Canary"  # a new revision is tried out, step by step
    PROMOTING = "Promoting"  # stable takes the canary's template; the canary serves until stable is ready
    ROLLED_BACK = "RolledBack"  # the canary failed; stable serves until the spec changes
    QUEUED = "Queued"  # a new revision waits for a canary slot (--max-concurrent-canaries); stable serves


class PausedBy(str, Enum):
    """Who holds a paused rollout (status.rollout.pausedBy)."""

    APPROVAL = "approval"  # an open-ended pause step: approvedVersion or the promote annotation releases it
    ANALYSIS = "analysis"  # an inconclusive analysis (onInconclusive: Pause): a conclusive round releases it


class Condition(StatusModel):
    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(max_length=1024)
    message: str = Field("", max_length=32768)
    last_transition_time: str
    observed_generation: int | None = None


class RoleStatus(StatusModel):
    """What one role (stable or canary) is serving."""

    revision: str | None = None
    model_version: str | None = None
    replicas: int = 0
    ready_replicas: int = 0


class StableStatus(RoleStatus):
    """The stable role, plus what the operator needs to keep rendering it."""

    spec: dict[str, Any] | None = Field(
        None,
        description="The pod-shaping part of the spec the stable revision was made from (model, runtime, "
        "resources, podMetadata, nodeSelector, tolerations, serviceAccountName and the scheduling fields). While a "
        "newer revision "
        "is tried out or was rolled back, the stable Deployment is rendered from it.",
    )
    runtime: dict[str, Any] | None = Field(
        None,
        description="The serving container (image, port, args, env, probe, storage initializer) the stable "
        "revision was rolled out with. An operator upgrade with a new runtime table does not re-template it: "
        "the table's change reaches a model with its next spec change, through a canary.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class TrafficStatus(StatusModel):
    stable: int = Field(100, ge=0, le=100, description="Percent of requests served by stable.")
    canary: int = Field(0, ge=0, le=100, description="Percent of requests served by the canary.")
    verified: bool = Field(False, description="The weights were read back from the provider and match.")
    mirror: int | None = Field(
        None, ge=0, le=100, description="Percent of requests copied to the canary, its answers discarded (shadow)."
    )
    headers_to_canary: bool | None = Field(
        None, description="Requests with traffic.canaryHeaders go to the canary (false: to stable, as no canary pod "
        "is ready)."
    )


class CapacityStatus(StatusModel):
    """spec.rollout.capacity.mode Replace: the pod budget both roles share,
    and how this pass spends it."""

    mode: Literal["Replace"] = "Replace"
    budget: int = Field(description="Pods in all at most: replicas + maxSurge.")
    min_ready: int = Field(description="Ready pods in all at least: replicas - maxUnavailable.")
    stable: int = Field(description="Pods the stable Deployment is given now.")
    canary: int = Field(description="Pods the canary Deployment is given now.")
    surge: int = Field(description="Pods above spec.replicas now (stable + canary - replicas, at least 0).")
    # The scale subresource's status (autoscaling: the HPA reads them).
    replicas: int | None = Field(None, description="Pods of both roles now (stable + canary).")
    selector: str | None = Field(None, description="Selects the pods of both roles (the HPA averages their CPU).")


class DecisionRecord(StatusModel):
    """One analysis verdict, or one smoke-test check's outcome, and what the
    rollout did about it."""

    time: str
    metric: str = Field(description="The metric judged, or for a check: check/<name>.")
    value: float | None = Field(None, description="The value judged; absent when there was none or it was not finite.")
    bound: str | None = None
    samples: int | None = None
    verdict: Literal["Pass", "Fail", "Inconclusive"]
    action: str
    message: str | None = Field(None, description="Why, in one line (e.g. the value was +Inf, the query failed).")
    job: str | None = Field(None, description="A check's Job (rollout.checks).")
    outcome: Literal["Passed", "Failed", "TimedOut"] | None = Field(None, description="A check's outcome.")

    @field_validator("value")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        # JSON has no Infinity or NaN: one would make every status write fail.
        return value if value is None or math.isfinite(value) else None


class CheckStatus(StatusModel):
    """The smoke-test check (rollout.checks) the canary waits on now."""

    name: str
    job: str = Field(description="The Job the operator created for it.")
    at: str | None = None
    phase: Literal["Running"] = "Running"
    started_at: str | None = None
    timeout_seconds: int | None = Field(None, description="Its timeout when it started.")


class RolloutProgress(StatusModel):
    """Where the rollout is. Also the rollout's memory: the operator resumes from
    it after a restart, so no step is repeated, skipped or lost."""

    stage: Stage | None = None
    strategy: str | None = Field(None, description="BlueGreen for a blue-green rollout (absent: Canary).")
    revision: str | None = Field(None, description="The revision tried out (in flight, or the one rolled back).")
    model_version: str | None = None
    uri: str | None = None
    registry: RegistryRecord | None = Field(None, description="The registry version tried out (models:/ URIs).")
    step: int = 0
    total_steps: int = 0
    step_started_at: str | None = None
    weight: int = Field(0, ge=0, le=100, description="Percent of traffic the rollout has set for the canary.")
    mirror: int | None = Field(None, ge=0, le=100, description="Percent of requests the last setMirror step "
                               "copies to the canary.")
    paused_reason: str | None = None
    paused_by: PausedBy | None = Field(None, description="Who holds the pause: approval or analysis.")
    failed_checks: int = 0
    stable_floor: int | None = Field(
        None,
        description="Under autoscaling: stable's replica count when the canary started. The HPA's minReplicas "
        "is held at least this high until the canary ends, so moving traffic to the canary cannot shrink stable.",
    )
    consecutive_errors: int = Field(
        0, description="Analysis rounds in a row with a failed query (see analysis.consecutiveErrorLimit)."
    )
    restarts_seen: int = Field(0, description="Canary container restarts counted so far (a rise is a failed check).")
    last_analysis_at: str | None = None
    not_ready_since: str | None = Field(None, description="Since when the canary has fewer ready pods than wanted.")
    message: str | None = Field(None, description="Why the rollout was rolled back.")
    canary_started_at: str | None = Field(None, description="When this canary started: its check Jobs' names "
                                          "derive from it, so a revision tried again gets new Jobs.")
    check: CheckStatus | None = Field(None, description="The smoke-test check running now.")
    passed_checks: list[str] = Field(default_factory=list, max_length=20,
                                     description="rollout.checks this canary has passed.")
    decisions: list[DecisionRecord] = Field(default_factory=list, max_length=MAX_DECISIONS)


class HistoryEntry(StatusModel):
    revision: str
    model_version: str
    uri: str
    result: str
    time: str
    registry: RegistryRecord | None = Field(
        None, description="For a models:/ URI: the URI asked, the registry version and its training run.")


class ModelDeploymentStatus(StatusModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    stable: StableStatus | None = None
    canary: RoleStatus | None = None
    traffic: TrafficStatus | None = None
    capacity: CapacityStatus | None = None
    rollout: RolloutProgress | None = None
    url: str | None = None
    model: ModelStatus | None = Field(
        None, description="For a models:/ URI: what it resolves to now in the MLflow registry.")
    history: list[HistoryEntry] = Field(default_factory=list, max_length=MAX_HISTORY)
    message: str | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_wire(self) -> dict:
        """The dict written to the cluster: camelCase, no unset (None) fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
