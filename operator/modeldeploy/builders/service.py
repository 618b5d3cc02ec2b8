"""Services: `<name>` for clients, `<name>-<role>` as backends for mesh providers."""

from typing import Any

from .labels import ROLE, common_labels, owned_by, selector_labels
from .naming import Role, preview_service_name, role_service_name, service_name
from .ownership import Owner, child_metadata
from .pod import PORT_NAME

SERVICE_PORT = 80


def _service(owner: Owner, name: str, labels: dict[str, str], selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_metadata(owner, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            # targetPort by name: the runtimes listen on different ports.
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def build_service(owner: Owner, *, stable_only: bool = False, role: str | None = None) -> dict[str, Any]:
    """`<name>`, what clients call (status.url).

    With the `replicas` provider it selects both roles' pods, so the split
    follows the ready pod counts. With a weighted provider (Gateway API,
    Istio) it selects stable pods only, like Flagger's apex Service and Argo
    Rollouts' stableService: the split happens only where the route says, and
    in-cluster callers of `<name>` never reach an unproven canary.

    `role`: strategy BlueGreen with the `replicas` provider, the one role it
    selects: stable until the switch, then the canary, all at once.
    """
    if role is not None:
        selector = selector_labels(owner.name, Role(role))
    else:
        selector = selector_labels(owner.name, Role.STABLE) if stable_only else owned_by(owner.name)
    return _service(owner, service_name(owner.name), common_labels(owner.name), selector)


def build_preview_service(owner: Owner) -> dict[str, Any]:
    """`<name>-preview` (strategy BlueGreen): the new revision's pods, for
    smoke tests and people to try before the switch (the canary's pods: it
    selects none while no new revision is in flight)."""
    labels = {**common_labels(owner.name), ROLE: Role.CANARY.value}
    return _service(owner, preview_service_name(owner.name), labels, selector_labels(owner.name, Role.CANARY))


def build_role_service(owner: Owner, role: Role) -> dict[str, Any]:
    """`<name>-<role>`: one role's pods, for routes that weight stable vs canary."""
    labels = {**common_labels(owner.name), ROLE: Role(role).value}
    return _service(owner, role_service_name(owner.name, role), labels, selector_labels(owner.name, role))
