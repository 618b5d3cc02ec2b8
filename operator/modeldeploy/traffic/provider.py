"""The one interface every traffic provider implements.

Shape and weights are separate concerns (Flagger's router lesson): the route's
shape (parents, hosts, backends) comes from the spec, its weights only from the
argument, which the rollout machine chooses. Re-applying a route therefore never
resets traffic: the caller always passes the weights the rollout currently holds.
"""

from collections.abc import Mapping
from typing import Any, Protocol

from ..api.spec import ModelDeploymentSpec
from ..builders.kinds import Kind
from ..builders.ownership import Owner
from ..status.observed import Observed
from .weights import Weights

# Live children as the kube layer caches them: (kind, name) -> object body.
LiveObjects = Mapping[tuple[str, str], Mapping[str, Any]]


class TrafficProvider(Protocol):
    name: str
    # True: weights are written to a route and can be read back and verified.
    # False: the split follows the ready pods (nothing to write, only to measure).
    weighted: bool
    # The kinds build_routes returns: to watch, read, prune and grant (reconcile.kinds).
    route_kinds: tuple[Kind, ...]

    def build_routes(self, owner: Owner, spec: ModelDeploymentSpec, weights: Weights, *, mirror: int = 0,
                     headers_to_canary: bool = False) -> list[dict[str, Any]]:
        """Route manifests: shape from `spec`, weights from `weights` (never
        from the live route); `mirror`: percent of the weighted requests
        copied to the canary (0: none); `headers_to_canary`: requests with
        spec.traffic.canaryHeaders go to the canary (else to stable)."""
        ...

    def read_headers_to_canary(self, owner: Owner, live: LiveObjects) -> bool | None:
        """Whether the live route sends requests with the canary headers to
        the canary; None when it has no header rule."""
        ...

    def read_mirror(self, owner: Owner, live: LiveObjects) -> int | None:
        """The percent of requests the live route copies to the canary: 0
        without a mirror, 100 for a mirror without a percentage (the API
        server dropped a field its Gateway API version lacks); None when
        there is no route to read."""
        ...

    def read_weights(self, owner: Owner, live: LiveObjects, observed: Observed) -> Weights | None:
        """The split the cluster realizes right now, or None when it cannot be told
        (the route is missing or has no backend with weight)."""
        ...
