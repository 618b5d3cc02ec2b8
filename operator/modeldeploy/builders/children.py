"""The full set of children for the steady state (no canary in flight)."""

from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..runtimes import RuntimeTable
from .autoscaler import build_autoscaler
from .deployment import build_deployment
from .disruption import build_disruption_budget
from .naming import Role
from .ownership import Owner
from .service import build_role_service, build_service

# Kinds the operator may create, for pruning children that are no longer desired
# (e.g. the HPA after autoscaling is removed): list by labels.owned_by(name).
CHILD_KINDS = (
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
)


def desired_children(owner: Owner, spec: ModelDeploymentSpec, table: RuntimeTable) -> list[dict[str, Any]]:
    """Everything that should exist when `spec` is fully rolled out as stable.

    During a canary the rollout machine adds `build_deployment(role=CANARY)` and
    keeps the stable Deployment on the previous template; the Services, HPA and
    PDB are the same in both states.
    """
    children = [
        build_deployment(owner, spec, table, role=Role.STABLE, replicas=spec.fixed_replicas),
        *shared_children(owner, spec),
    ]
    return children


def shared_children(owner: Owner, spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    """Children that do not depend on which revision is stable."""
    children = [build_service(owner), build_role_service(owner, Role.STABLE), build_role_service(owner, Role.CANARY)]
    if spec.autoscaling is not None:
        children.append(build_autoscaler(owner, spec.autoscaling))
    if spec.wants_disruption_budget:
        children.append(build_disruption_budget(owner))
    return children
