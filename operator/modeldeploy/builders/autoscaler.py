"""HorizontalPodAutoscaler for the stable Deployment."""

from typing import Any

from ..api.meta import API_VERSION, KIND
from ..api.spec import Autoscaling
from .labels import common_labels
from .naming import Role, autoscaler_name, deployment_name
from .ownership import Owner, child_metadata


def build_autoscaler(owner: Owner, autoscaling: Autoscaling, *, floor: int | None = None,
                     whole_model: bool = False) -> dict[str, Any]:
    """Only the stable Deployment is autoscaled; the canary's size is its
    weight's share of stable's count, set by the rollout. `floor`: while a
    canary runs, minReplicas is held at stable's count from the canary's
    start. The HPA sees only stable's CPU, which falls as traffic moves to
    the canary; without the floor it would shrink stable, and the canary
    (a share of stable) with it, below what serves the load (issue 9,
    defect 4). It still scales stable up if the load grows.

    `whole_model` (capacity mode Replace): the HPA scales the ModelDeployment
    itself through its scale subresource, averaging the CPU of both roles'
    pods; the rollout splits that total between stable and canary (issue 11)."""
    target = scale_target(owner, whole_model=whole_model)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(owner, autoscaler_name(owner.name), common_labels(owner.name)),
        "spec": {
            "scaleTargetRef": target,
            "minReplicas": max(autoscaling.min_replicas, floor or 0),
            "maxReplicas": autoscaling.max_replicas,
            "metrics": autoscaler_metrics(autoscaling),
        },
    }


def autoscaler_metrics(autoscaling: Autoscaling) -> list[dict[str, Any]]:
    """spec.autoscaling.metrics as written (requests per second, queue depth,
    GPU utilisation...), else CPU utilization at the spec's target. Under
    capacity mode Replace the HPA averages Resource and Pods metrics over
    both roles' pods (the scale subresource's selector), so a per-pod target
    keeps meaning the same as traffic moves to the canary."""
    if autoscaling.metrics is not None:
        return [metric.manifest() for metric in autoscaling.metrics]
    return [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {
                    "type": "Utilization",
                    "averageUtilization": autoscaling.target_cpu_utilization_percentage,
                },
            },
        }
    ]


def scale_target(owner: Owner, *, whole_model: bool) -> dict[str, str]:
    """What an autoscaler (HPA or KEDA's ScaledObject) scales: the stable
    Deployment, or in capacity mode Replace the ModelDeployment itself."""
    if whole_model:
        return {"apiVersion": API_VERSION, "kind": KIND, "name": owner.name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment_name(owner.name, Role.STABLE)}
