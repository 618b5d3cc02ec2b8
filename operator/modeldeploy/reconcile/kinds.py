"""The one registry of the kinds the operator writes.

Each builder module and each traffic provider declares what it writes
(builders.children.BUILT_KINDS, TrafficProvider.route_kinds); pruning, the
watches, the RBAC checks and the tests all read this list, so adding a
provider touches its own module, its API model and RBAC, nothing else.
"""

from ..builders.children import BUILT_KINDS
from ..traffic.registry import all_route_kinds

# (apiVersion, kind) of every child a ModelDeployment may have.
CHILD_KINDS: tuple[tuple[str, str], ...] = (*BUILT_KINDS, *all_route_kinds())

# Kinds pruned when no longer desired: the HPA after autoscaling is turned
# off, the canary Deployment after a rollout ends, a route after the traffic
# provider changes.
PRUNABLE: frozenset[str] = frozenset(kind for _, kind in CHILD_KINDS)

# Kinds that carry route weights (the weighted providers' routes).
ROUTE_KINDS: frozenset[str] = frozenset(kind for _, kind in all_route_kinds())
