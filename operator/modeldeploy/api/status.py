"""`status` of a ModelDeployment, written only by the operator.

Conditions follow kstatus (Ready, Reconciling, Stalled) so generic tools such as
Argo CD, Flux and `kubectl wait` understand the resource without custom code.
"""

from enum import Enum
from typing import Literal

from pydantic import Field

from .base import StatusModel

MAX_DECISIONS = 20
MAX_HISTORY = 10


class Phase(str, Enum):
    PENDING = "Pending"
    PROGRESSING = "Progressing"
    READY = "Ready"
    DEGRADED = "Degraded"
    FAILED = "Failed"
    CANARY = "Canary"
    PAUSED = "Paused"
    PROMOTING = "Promoting"
    ROLLED_BACK = "RolledBack"


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


class TrafficStatus(StatusModel):
    stable: int = Field(100, ge=0, le=100, description="Percent of requests served by stable.")
    canary: int = Field(0, ge=0, le=100, description="Percent of requests served by the canary.")
    verified: bool = Field(False, description="The weights were read back from the provider and match.")


class Decision(StatusModel):
    """One analysis verdict and what the rollout did about it."""

    time: str
    metric: str
    value: float | None = None
    bound: str | None = None
    samples: int | None = None
    verdict: Literal["Pass", "Fail", "Inconclusive"]
    action: str


class RolloutProgress(StatusModel):
    step: int = 0
    total_steps: int = 0
    step_started_at: str | None = None
    paused_reason: str | None = None
    failed_checks: int = 0
    decisions: list[Decision] = Field(default_factory=list, max_length=MAX_DECISIONS)


class HistoryEntry(StatusModel):
    revision: str
    model_version: str
    uri: str
    result: str
    time: str


class ModelDeploymentStatus(StatusModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    conditions: list[Condition] = Field(default_factory=list)
    stable: RoleStatus | None = None
    canary: RoleStatus | None = None
    traffic: TrafficStatus | None = None
    rollout: RolloutProgress | None = None
    url: str | None = None
    history: list[HistoryEntry] = Field(default_factory=list, max_length=MAX_HISTORY)
    message: str | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def to_wire(self) -> dict:
        """The dict written to the cluster: camelCase, no unset (None) fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
