"""Services: `<name>` for clients, `<name>-<role>` as backends for mesh providers."""

from typing import Any

from .labels import ROLE, common_labels, owned_by, selector_labels
from .naming import Role, role_service_name, service_name
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


def build_service(owner: Owner) -> dict[str, Any]:
    """`<name>`: both roles' pods, so the `replicas` provider splits by pod count."""
    return _service(owner, service_name(owner.name), common_labels(owner.name), owned_by(owner.name))


def build_role_service(owner: Owner, role: Role) -> dict[str, Any]:
    """`<name>-<role>`: one role's pods, for routes that weight stable vs canary."""
    labels = {**common_labels(owner.name), ROLE: Role(role).value}
    return _service(owner, role_service_name(owner.name, role), labels, selector_labels(owner.name, role))
