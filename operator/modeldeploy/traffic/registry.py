"""Which provider serves a spec: one instance per name in api.traffic.PROVIDERS."""

from ..api.spec import ModelDeploymentSpec
from ..api.traffic import PROVIDERS
from ..builders.kinds import Kind
from .gateway_api import GatewayAPIProvider
from .istio import IstioProvider
from .provider import TrafficProvider
from .replicas import ReplicasProvider

_BY_NAME: dict[str, TrafficProvider] = {
    provider.name: provider for provider in (ReplicasProvider(), GatewayAPIProvider(), IstioProvider())
}
assert set(_BY_NAME) == set(PROVIDERS), "every provider the API accepts needs a module here"


def provider_named(name: str) -> TrafficProvider:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown traffic provider {name!r} (known: {', '.join(PROVIDERS)})") from None


def provider_for(spec: ModelDeploymentSpec) -> TrafficProvider:
    return provider_named(spec.traffic.provider)


def weighted_providers() -> tuple[TrafficProvider, ...]:
    """The providers that write a route: to read what a route carries when the
    spec cannot say which provider it names (an invalid spec)."""
    return tuple(provider for provider in _BY_NAME.values() if provider.weighted)


def all_route_kinds() -> tuple[Kind, ...]:
    """Every route kind any provider may own: to prune a route left behind when
    the spec switches provider (e.g. istio -> replicas)."""
    return tuple(kind for provider in _BY_NAME.values() for kind in provider.route_kinds)
