"""Names and roles of the children of a ModelDeployment `<name>`.

    Deployment  <name>-stable   serves the stable revision. Its pod template is
                                replaced on promotion (the canary's template is
                                copied in), so the name never changes and
                                clients, HPA and PDB keep pointing at it.
    Deployment  <name>-canary   exists only while a new revision is tried out.
    Service     <name>          what clients call. With the `replicas` traffic
                                provider it selects the pods of BOTH roles, so
                                the split follows the ready pod counts; with a
                                weighted provider, stable pods only.
    Service     <name>-stable   one role only: the backends that mesh providers
    Service     <name>-canary   (Gateway API, Istio) weight between.
    HPA         <name>          scales <name>-stable (only with spec.autoscaling).
    PDB         <name>          keeps all but one pod up (only with > 1 replica).

Fixed names (rather than one Deployment per revision) keep every reference
stable across rollouts: only the canary comes and goes.
"""

from enum import Enum


class Role(str, Enum):
    STABLE = "stable"
    CANARY = "canary"


def deployment_name(name: str, role: Role) -> str:
    return f"{name}-{Role(role).value}"


def service_name(name: str) -> str:
    return name


def role_service_name(name: str, role: Role) -> str:
    return f"{name}-{Role(role).value}"


def preview_service_name(name: str) -> str:
    """strategy BlueGreen: the new revision's pods before the switch."""
    return f"{name}-preview"


def autoscaler_name(name: str) -> str:
    return name


def disruption_budget_name(name: str) -> str:
    return name


def cluster_url(name: str, namespace: str) -> str:
    """The in-cluster URL clients use (the `<name>` Service, port 80)."""
    return f"http://{service_name(name)}.{namespace}.svc.cluster.local"
