"""Decision: what decide() asks the kube layer to make true."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..api.status import HistoryEntry
from ..status.rollout import RolloutReport
from ..traffic.weights import Weights
from .state import RolloutState

NORMAL = "Normal"
WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Decision:
    # Render `<name>-stable` from this spec (the snapshot's pods on the current
    # spec while another revision is tried out or was rolled back).
    stable_spec: ModelDeploymentSpec
    # ...with this runtime (runtimes.runtime_to_wire); None: resolve it from the table.
    stable_runtime: Mapping[str, Any] | None
    # replicas for `<name>-stable`; None when the HPA owns the count.
    stable_replicas: int | None
    # Under autoscaling while a canary runs: the HPA's minReplicas is raised
    # to this, so stable keeps its count as traffic moves to the canary.
    autoscaler_floor: int | None
    # replicas for `<name>-canary`, rendered from the current spec; None means
    # the canary Deployment must not exist (delete it AFTER applying the routes,
    # so no route points at pods that are going away).
    canary_replicas: int | None
    # Build the routes with these (provider.build_routes): the weights the
    # rollout holds now, so re-applying a route's shape never moves traffic.
    weights: Weights
    # Annotations to remove from the ModelDeployment (requests consumed).
    remove_annotations: tuple[str, ...]
    # Events to post on the ModelDeployment (only on transitions).
    events: tuple[Event, ...]
    # Pass to derive_status(rollout=...): status blocks, conditions, history.
    report: RolloutReport
    # The new memory; already inside `report` (status), kept here for tests and logs.
    state: RolloutState
    # Call again within this many seconds (pause end, analysis, deadline, polling); None: on events only.
    requeue_after: float | None
    # ...and this share of the requests copied to the canary (a shadow step).
    mirror: int = 0
    # Requests with spec.traffic.canaryHeaders go to the canary (else to stable).
    headers_to_canary: bool = False
    # The role the client Service selects ("stable"/"canary"); None: both
    # (BlueGreen with the replicas provider switches it all at once).
    client_role: str | None = None
    # Scale the live canary Deployment as it is instead of rendering it from
    # the current spec (capacity mode Replace, walking back a canary whose
    # revision is no longer the spec's: re-templating would replace its pods).
    canary_template_from_live: bool = False
    # The same for the stable Deployment (capacity mode Replace: not
    # re-templated while canary pods hold their places).
    stable_template_from_live: bool = False

    @property
    def history(self):
        return self.report.history


__all__ = ["NORMAL", "WARNING", "Decision", "Event", "HistoryEntry"]
