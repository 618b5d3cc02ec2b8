"""What the weighted providers share: the route's name, metadata and backends."""

from collections.abc import Mapping
from typing import Any

from ..builders.labels import common_labels
from ..builders.naming import Role, role_service_name
from ..builders.ownership import Owner, child_metadata
from .weights import Weights


def route_name(name: str) -> str:
    """One route per ModelDeployment, named like it (and like the client Service)."""
    return name


def route_metadata(owner: Owner) -> dict[str, Any]:
    return child_metadata(owner, route_name(owner.name), common_labels(owner.name))


def backend_services(owner: Owner) -> tuple[str, str]:
    """The role Services a route weights between: (stable, canary)."""
    return role_service_name(owner.name, Role.STABLE), role_service_name(owner.name, Role.CANARY)


def backends(owner: Owner, weights: Weights) -> list[tuple[str, int]]:
    """(role Service name, weight), stable first. The canary backend is always
    present, at weight 0 when idle, so starting a canary changes a number,
    not the route's shape."""
    stable, canary = backend_services(owner)
    return [(stable, weights.stable), (canary, weights.canary)]


def header_backends(owner: Owner, to_canary: bool) -> list[tuple[str, int]]:
    """(role Service name, weight) for the requests that carry the canary
    headers: all to the canary while it has a ready pod, else all to stable.
    Both backends are always listed, so the switch changes numbers, not the
    route's shape (and a header request never meets a backend with no pod)."""
    stable, canary = backend_services(owner)
    return [(stable, 0 if to_canary else 100), (canary, 100 if to_canary else 0)]


def weights_by_backend(found: Mapping[str, float], stable: str, canary: str) -> Weights | None:
    """Percentages from the weights read per backend; a missing backend has none."""
    return Weights.from_ratio(found.get(stable, 0), found.get(canary, 0))


def number(value: Any, default: float) -> float:
    """A weight as read from a live object (absent means the API's default)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    return value
