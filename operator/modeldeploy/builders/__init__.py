"""Builders (pure): a spec in, Kubernetes manifests out, as plain dicts.

Plain dicts diff, golden-test and server-side-apply more easily than client
model objects. Nothing here talks to the cluster.
"""

from .autoscaler import build_autoscaler
from .children import BUILT_KINDS, shared_children
from .deployment import build_deployment
from .disruption import build_disruption_budget
from .labels import owned_by
from .naming import Role, cluster_url, deployment_name, role_service_name, service_name
from .ownership import Owner, owner_reference
from .revision import compute_revision
from .service import build_role_service, build_service

__all__ = [
    "BUILT_KINDS",
    "Owner",
    "Role",
    "build_autoscaler",
    "build_deployment",
    "build_disruption_budget",
    "build_role_service",
    "build_service",
    "cluster_url",
    "compute_revision",
    "deployment_name",
    "owned_by",
    "owner_reference",
    "role_service_name",
    "service_name",
    "shared_children",
]
