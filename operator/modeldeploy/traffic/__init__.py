"""Traffic providers (pure): how requests are split between stable and canary.

One interface (`TrafficProvider`), one module per provider, one registry
(`provider_for`). Builders return plain dicts; reading weights takes the live
objects the kube layer already cached. Nothing here talks to the cluster.
"""

from .gateway_api import GatewayAPIProvider
from .istio import IstioProvider
from .provider import LiveObjects, TrafficProvider
from .registry import all_route_kinds, provider_for, provider_named
from .replicas import ReplicasProvider, achieved_weights
from .routes import route_name
from .weights import ALL_STABLE, Weights

__all__ = [
    "ALL_STABLE",
    "GatewayAPIProvider",
    "IstioProvider",
    "LiveObjects",
    "ReplicasProvider",
    "TrafficProvider",
    "Weights",
    "achieved_weights",
    "all_route_kinds",
    "provider_for",
    "provider_named",
    "route_name",
]
