"""A kind the operator writes: its apiVersion, kind and (for watches, paths
and RBAC) its resource plural. Each builder and each traffic provider
declares its own; reconcile.kinds gathers them into the one registry."""

from typing import NamedTuple


class Kind(NamedTuple):
    api_version: str
    kind: str
    plural: str

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]  # "" for the core group

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")
SERVICE = Kind("v1", "Service", "services")
HPA = Kind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers")
PDB = Kind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets")
JOB = Kind("batch/v1", "Job", "jobs")
# spec.autoscaling.engine KEDA (builders/scaledobject.py); watched only where KEDA's CRDs are installed.
SCALED_OBJECT = Kind("keda.sh/v1alpha1", "ScaledObject", "scaledobjects")
