"""The children every ModelDeployment has besides its Deployments and routes."""

from typing import Any

from ..api.spec import ModelDeploymentSpec
from .autoscaler import build_autoscaler
from .kinds import DEPLOYMENT, HPA, JOB, PDB, SCALED_OBJECT, SERVICE
from .disruption import build_disruption_budget
from .naming import Role
from .scaledobject import build_scaled_object
from .ownership import Owner
from .service import build_preview_service, build_role_service, build_service

# What the builders write (reconcile.kinds adds the traffic providers' routes).
# JOB: the smoke-test checks (builders/job.py), built by reconcile.plan from the decision.
BUILT_KINDS = (DEPLOYMENT, SERVICE, HPA, PDB, JOB, SCALED_OBJECT)


def shared_children(owner: Owner, spec: ModelDeploymentSpec, *, weighted: bool,
                    autoscaler_floor: int | None = None, client_role: str | None = None) -> list[dict[str, Any]]:
    """Children that do not depend on which revision is stable. `weighted`:
    the traffic provider splits by route weights, so the client Service
    selects stable pods only (see build_service). `autoscaler_floor`: the
    HPA's minReplicas while a canary runs (build_autoscaler). `client_role`:
    the one role the client Service selects (BlueGreen, replicas provider)."""
    children = [build_service(owner, stable_only=weighted, role=client_role), build_role_service(owner, Role.STABLE),
                build_role_service(owner, Role.CANARY)]
    if spec.rollout.strategy == "BlueGreen":
        children.append(build_preview_service(owner))
    if spec.autoscaling is not None:
        # engine KEDA: a ScaledObject in the HPA's place (switching engine prunes the other).
        build = build_scaled_object if spec.autoscaling.keda_engine else build_autoscaler
        children.append(build(owner, spec.autoscaling, floor=autoscaler_floor, whole_model=spec.hpa_governs_total))
    if spec.wants_disruption_budget:
        children.append(build_disruption_budget(owner))
    return children
