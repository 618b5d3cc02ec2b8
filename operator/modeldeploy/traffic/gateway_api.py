"""`gatewayAPI`: an HTTPRoute `<name>` with weighted backendRefs to the role
Services; a first rule for spec.traffic.canaryHeaders, and a RequestMirror
filter for shadow steps."""

from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..builders.kinds import Kind
from ..builders.ownership import Owner
from ..builders.service import SERVICE_PORT
from ..status.observed import Observed
from .provider import LiveObjects
from .routes import (backend_services, backends, header_backends, number, route_manifest, route_name,
                     weights_by_backend)
from .weights import Weights

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
# The Gateway API defaults a backendRef's weight to 1 when it is left out.
DEFAULT_BACKEND_WEIGHT = 1
MIRROR = "RequestMirror"
# The Gateway API's names for a header match's type.
MATCH_TYPES = {"Exact": "Exact", "RegularExpression": "RegularExpression"}


def _backend_refs(pairs: list[tuple[str, int]]) -> list[dict[str, Any]]:
    return [{"name": service, "port": SERVICE_PORT, "weight": weight} for service, weight in pairs]


class GatewayAPIProvider:
    name = "gatewayAPI"
    weighted = True
    route_kinds = (Kind(API_VERSION, KIND, "httproutes"),)

    def build_routes(self, owner: Owner, spec: ModelDeploymentSpec, weights: Weights, *, mirror: int = 0,
                     headers_to_canary: bool = False) -> list[dict[str, Any]]:
        settings = spec.traffic.gateway_api
        if settings is None:  # parse_spec rejects this; kept for a clear message if called directly
            raise ValueError("traffic.provider gatewayAPI needs traffic.gatewayAPI")
        route_spec: dict[str, Any] = {
            "parentRefs": [ref.model_dump(mode="json", by_alias=True, exclude_none=True) for ref in settings.parent_refs]
        }
        if settings.hostnames:
            route_spec["hostnames"] = list(settings.hostnames)
        rules: list[dict[str, Any]] = []
        if spec.traffic.canary_headers:
            # A match with headers outranks the weighted rule's (path-only)
            # match whatever the order: the Gateway API's precedence.
            headers = [{"type": MATCH_TYPES[h.type], "name": h.name, "value": h.value}
                       for h in spec.traffic.canary_headers]
            rules.append({"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": headers}],
                          "backendRefs": _backend_refs(header_backends(owner, headers_to_canary))})
        weighted: dict[str, Any] = {"backendRefs": _backend_refs(backends(owner, weights))}
        if mirror > 0:
            _, canary = backend_services(owner)
            # Without a percent the filter copies every request: 100 is
            # written so, as it reads back from any Gateway API version.
            copy: dict[str, Any] = {"backendRef": {"name": canary, "port": SERVICE_PORT}}
            if mirror < 100:
                copy["percent"] = mirror
            weighted["filters"] = [{"type": MIRROR, "requestMirror": copy}]
        rules.append(weighted)
        route_spec["rules"] = rules
        return [route_manifest(owner, API_VERSION, KIND, route_spec)]

    def read_weights(self, owner: Owner, live: LiveObjects, observed: Observed) -> Weights | None:
        rule = _weighted_rule(live.get((KIND, route_name(owner.name))))
        if rule is None:
            return None
        found = {
            ref.get("name", ""): number(ref.get("weight"), DEFAULT_BACKEND_WEIGHT)
            for ref in rule.get("backendRefs") or []
        }
        return weights_by_backend(found, *backend_services(owner))

    def read_mirror(self, owner: Owner, live: LiveObjects) -> int | None:
        route = live.get((KIND, route_name(owner.name)))
        rule = _weighted_rule(route)
        if rule is None:
            return None
        _, canary = backend_services(owner)
        for found in rule.get("filters") or []:
            mirror = found.get("requestMirror") or {}
            if found.get("type") == MIRROR and (mirror.get("backendRef") or {}).get("name") == canary:
                return _mirrored_percent(mirror)
        return 0


    def read_headers_to_canary(self, owner: Owner, live: LiveObjects) -> bool | None:
        route = live.get((KIND, route_name(owner.name)))
        for rule in ((route or {}).get("spec") or {}).get("rules") or []:
            if any(match.get("headers") for match in rule.get("matches") or []):
                found = {ref.get("name", ""): number(ref.get("weight"), DEFAULT_BACKEND_WEIGHT)
                         for ref in rule.get("backendRefs") or []}
                weights = weights_by_backend(found, *backend_services(owner))
                return weights is not None and weights.canary == 100
        return None


def _weighted_rule(route: Any) -> dict[str, Any] | None:
    """The rule that carries the weights: the first without a header match
    (the API server gives a rule without matches a path match of its own).
    Other rules are the header rule or someone else's edit."""
    if not route:
        return None
    for rule in (route.get("spec") or {}).get("rules") or []:
        if not any(match.get("headers") for match in rule.get("matches") or []):
            return rule
    return None


def _mirrored_percent(mirror: dict[str, Any]) -> int:
    """A RequestMirror filter's share of requests: its percent, its fraction,
    or all of them when it has neither (an older Gateway API)."""
    if isinstance(mirror.get("percent"), int):
        return mirror["percent"]
    fraction = mirror.get("fraction") or {}
    numerator, denominator = fraction.get("numerator"), fraction.get("denominator", 100)
    if isinstance(numerator, int) and isinstance(denominator, int) and denominator > 0:
        return min(100, round(100 * numerator / denominator))
    return 100
