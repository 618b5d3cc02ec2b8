"""What one reconcile pass sees: the World the controller gathers from its
watch cache, handed to plan() as plain data."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..api.registry import RegistryLookup
from ..rollout.admission import CanarySlots
from ..rollout.inputs import AnalysisResults
from ..runtimes import RuntimeTable
from ..status.observed import PodSummary

# (kind, name) -> the object as the API server returned it (camelCase dict).
Objects = Mapping[tuple[str, str], Mapping[str, Any]]


@dataclass(frozen=True)
class World:
    # The ModelDeployment as stored: metadata (name, namespace, uid,
    # generation, annotations), spec and status.
    model: Mapping[str, Any]
    # Live children this ModelDeployment controls (controller ownerReference).
    children: Objects
    # Live objects of the kinds we write in the same namespace, whoever
    # controls them: a child name already taken by another owner is a
    # NameConflict, never an adoption.
    neighbours: Objects
    # Pods of this ModelDeployment (label modeldeploy.io/name), from the pod watch.
    pods: tuple[PodSummary, ...]
    now: datetime
    table: RuntimeTable
    # Answers to the queries an earlier plan() asked for (Plan.queries).
    analysis: AnalysisResults | None = None
    # The API server refused (422) a child built from this spec: its message.
    refused: str | None = None
    # Apply every desired child on every pass (the "naive" benchmark only).
    write_unchanged: bool = False
    # --max-concurrent-canaries: who holds a canary slot, who waits (None: no limit).
    canary_slots: CanarySlots | None = None
    # A models:/ spec.model.uri: what the MLflow registry answered for it
    # (kube/registry.py); None: not asked (no such URI) or no answer yet.
    registry: RegistryLookup | None = None

    @property
    def name(self) -> str:
        return self.model["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.model["metadata"]["namespace"]
