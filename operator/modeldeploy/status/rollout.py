"""What the rollout machine asks status to say (built by modeldeploy.rollout).

A plain value handed to derive_status, so status derivation never imports the
machine: the machine depends on status, not the other way round.
"""

from dataclasses import dataclass

from ..api.status import CapacityStatus, HistoryEntry, RoleStatus, RolloutProgress, StableStatus, TrafficStatus
from .health import Health


@dataclass(frozen=True)
class RolloutReport:
    # revision, modelVersion and spec of the stable role as the operator renders
    # it (derive_status adds the observed replica counts).
    stable: StableStatus | None
    # The canary in flight (None when there is none); replica counts added likewise.
    canary: RoleStatus | None
    traffic: TrafficStatus
    progress: RolloutProgress
    history: tuple[HistoryEntry, ...] = ()  # entries to append (Promoted, RolledBack, Aborted)
    # Overrides the usual assessment while a canary runs or after a rollback;
    # None in the steady state, where assess() judges the stable revision.
    health: Health | None = None
    # Capacity mode Replace: the pod budget in use (None in mode Surge).
    capacity: CapacityStatus | None = None
