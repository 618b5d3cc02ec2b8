"""What the weighted providers share: the route's name, metadata and backends."""

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..builders.labels import common_labels
from ..builders.naming import Role, role_service_name
from ..builders.ownership import Owner, child_metadata
from .weights import Weights


def route_name(name: str) -> str:
    """One route per ModelDeployment, named like it (and like the client Service)."""
    return name


# The hash of the route's spec as last applied. A route's lists (rules,
# backendRefs, filters, parentRefs) have no merge keys: the API server
# replaces each whole and then fills in its defaults, so comparing items by
# containment cannot tell a field we dropped (a mirror filter, a
# sectionName) from one the server added. The hash can: any change to what
# we send is a change to it.
SPEC_HASH = "modeldeploy.io/route-spec-hash"


def route_manifest(owner: Owner, api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
    metadata = child_metadata(owner, route_name(owner.name), common_labels(owner.name), {SPEC_HASH: digest})
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


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
