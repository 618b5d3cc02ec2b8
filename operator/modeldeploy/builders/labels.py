"""Labels and annotations the operator puts on its children.

The selector labels (name + role) never change for the life of a Deployment,
because a Deployment's selector is immutable; the revision is a label on the
pods, not part of the selector.
"""

from .naming import Role

PREFIX = "modeldeploy.io"
NAME = f"{PREFIX}/name"
ROLE = f"{PREFIX}/role"
REVISION = f"{PREFIX}/revision"
MODEL_VERSION = f"{PREFIX}/model-version"
MODEL_URI = f"{PREFIX}/model-uri"

MANAGED_BY = "modeldeploy-operator"
COMPONENT = "model-server"


def owned_by(name: str) -> dict[str, str]:
    """Selects every child of ModelDeployment `name` (for listing and pruning)."""
    return {NAME: name}


def common_labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/component": COMPONENT,
        NAME: name,
    }


def selector_labels(name: str, role: Role) -> dict[str, str]:
    """The immutable Deployment selector, and the role Services' selector."""
    return {NAME: name, ROLE: Role(role).value}


def role_labels(name: str, role: Role, revision: str) -> dict[str, str]:
    """Labels of a Deployment and its pods: who, which role, which revision."""
    return {**common_labels(name), ROLE: Role(role).value, REVISION: revision}


def pod_labels(user_labels: dict[str, str], name: str, role: Role, revision: str) -> dict[str, str]:
    """The user's podMetadata.labels, overridden by ours: a user label must never
    move a pod out of its Deployment's selector or lie about its revision."""
    return {**user_labels, **role_labels(name, role, revision)}
