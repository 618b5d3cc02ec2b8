"""`replicas`: no route at all. The `<name>` Service selects the pods of both
roles, so the split is the ratio of ready pods, and what status reports is the
weight actually achieved, not the one asked for."""

from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..builders.kinds import Kind
from ..builders.labels import ROLE
from ..builders.naming import service_name
from ..builders.ownership import Owner
from ..status.observed import Observed
from .provider import LiveObjects
from .weights import Weights


def selected_role(owner: Owner, live: LiveObjects) -> str | None:
    """The one role the live client Service selects (strategy BlueGreen);
    None when it selects both (or is not there yet)."""
    service = live.get(("Service", service_name(owner.name))) or {}
    return ((service.get("spec") or {}).get("selector") or {}).get(ROLE)


def achieved_weights(stable_ready: int, canary_ready: int, role: str | None = None) -> Weights | None:
    """Each ready pod takes an equal share of requests behind one Service;
    `role`: the one role it selects (BlueGreen), whose pods take them all."""
    return Weights.from_ratio(0 if role == "canary" else stable_ready, 0 if role == "stable" else canary_ready)


class ReplicasProvider:
    name = "replicas"
    weighted = False
    route_kinds: tuple[Kind, ...] = ()

    def build_routes(self, owner: Owner, spec: ModelDeploymentSpec, weights: Weights, *, mirror: int = 0,
                     headers_to_canary: bool = False) -> list[dict[str, Any]]:
        return []  # the rollout sizes the canary Deployment instead (the CRD refuses mirrors and headers)

    def read_mirror(self, owner: Owner, live: LiveObjects) -> int | None:
        return None

    def read_headers_to_canary(self, owner: Owner, live: LiveObjects) -> bool | None:
        return None

    def read_weights(self, owner: Owner, live: LiveObjects, observed: Observed) -> Weights | None:
        stable_ready = observed.stable.ready_replicas if observed.stable is not None else 0
        canary_ready = observed.canary.ready_replicas if observed.canary is not None else 0
        return achieved_weights(stable_ready, canary_ready, selected_role(owner, live))
