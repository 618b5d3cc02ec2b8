"""Status derivation (pure): what the cluster shows -> the status to write."""

from .derive import derive_status
from .health import Health, assess
from .observed import (
    ContainerWaiting,
    DeploymentCondition,
    Observed,
    ObservedDeployment,
    PodSummary,
    observe_deployment,
    summarize_pod,
)
from .phase import derive_phase

__all__ = [
    "ContainerWaiting",
    "DeploymentCondition",
    "Health",
    "Observed",
    "ObservedDeployment",
    "PodSummary",
    "assess",
    "derive_phase",
    "derive_status",
    "observe_deployment",
    "summarize_pod",
]
