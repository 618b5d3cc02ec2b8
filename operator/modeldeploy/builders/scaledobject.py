"""KEDA ScaledObject (keda.sh/v1alpha1) for `spec.autoscaling.engine: KEDA`,
in place of the HPA: the same target, the same floor, KEDA's triggers. KEDA
runs an HPA of its own (keda-hpa-<name>) for counts of 1 and up and itself
scales between 0 and 1 when minReplicas is 0 (issue 14, item 3)."""

from typing import Any

from ..api.spec import Autoscaling
from .autoscaler import scale_target
from .kinds import SCALED_OBJECT
from .labels import common_labels
from .naming import autoscaler_name
from .ownership import Owner, child_metadata


def build_scaled_object(owner: Owner, autoscaling: Autoscaling, *, floor: int | None = None,
                        whole_model: bool = False) -> dict[str, Any]:
    """As build_autoscaler: `floor` holds minReplicaCount at stable's count
    from a canary's start until it ends, so KEDA never scales the model to
    zero, nor stable below what serves, under a canary; `whole_model`
    targets the ModelDeployment's scale subresource (capacity mode Replace)."""
    keda = autoscaling.keda
    assert keda is not None  # engine KEDA needs keda.triggers (api)
    spec: dict[str, Any] = {
        "scaleTargetRef": scale_target(owner, whole_model=whole_model),
        "minReplicaCount": max(autoscaling.min_replicas, floor or 0),
        "maxReplicaCount": autoscaling.max_replicas,
    }
    if keda.polling_interval is not None:
        spec["pollingInterval"] = keda.polling_interval
    if keda.cooldown_period is not None:
        spec["cooldownPeriod"] = keda.cooldown_period
    spec["triggers"] = [trigger.model_dump(mode="json", by_alias=True, exclude_none=True) for trigger in keda.triggers]
    return {
        "apiVersion": SCALED_OBJECT.api_version,
        "kind": SCALED_OBJECT.kind,
        "metadata": child_metadata(owner, autoscaler_name(owner.name), common_labels(owner.name)),
        "spec": spec,
    }
