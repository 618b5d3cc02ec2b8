"""The one registry of the kinds the operator writes.

Each builder module and each traffic provider declares what it writes
(builders.children.BUILT_KINDS, TrafficProvider.route_kinds); pruning, the
watches, the RBAC checks and the tests all read this list, so adding a
provider touches its own module, its API model and RBAC, nothing else.
"""

from ..builders.children import BUILT_KINDS
from ..builders.kinds import Kind
from ..traffic.registry import all_route_kinds

# Every kind a ModelDeployment's children may be, with its plural: the kube
# layer's paths, the watches (handlers.py), the RBAC checks and the tests.
CHILD_RESOURCES: tuple[Kind, ...] = (*BUILT_KINDS, *all_route_kinds())

# (apiVersion, kind) of the same.
CHILD_KINDS: tuple[tuple[str, str], ...] = tuple((k.api_version, k.kind) for k in CHILD_RESOURCES)

# Kinds pruned when no longer desired: the HPA after autoscaling is turned
# off, the canary Deployment after a rollout ends, a route after the traffic
# provider changes.
PRUNABLE: frozenset[str] = frozenset(k.kind for k in CHILD_RESOURCES)

# Kinds that carry route weights (the weighted providers' routes).
ROUTE_KINDS: frozenset[str] = frozenset(k.kind for k in all_route_kinds())
