"""HorizontalPodAutoscaler for the stable Deployment."""

from typing import Any

from ..api.spec import Autoscaling
from .labels import common_labels
from .naming import Role, autoscaler_name, deployment_name
from .ownership import Owner, child_metadata


def build_autoscaler(owner: Owner, autoscaling: Autoscaling) -> dict[str, Any]:
    # Only the stable Deployment is autoscaled; the canary's size is set by the rollout.
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": child_metadata(owner, autoscaler_name(owner.name), common_labels(owner.name)),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": deployment_name(owner.name, Role.STABLE),
            },
            "minReplicas": autoscaling.min_replicas,
            "maxReplicas": autoscaling.max_replicas,
            "metrics": [
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
            ],
        },
    }
