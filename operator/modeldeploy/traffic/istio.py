"""`istio`: a VirtualService `<name>` with weighted destinations (the role
Services); a first http route for spec.traffic.canaryHeaders, and a mirror
for shadow steps."""

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

API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"
# Istio: a destination without a weight takes all the traffic when it is the only one.
DEFAULT_DESTINATION_WEIGHT = 100
# Istio mirrors every request when mirrorPercentage is left out.
DEFAULT_MIRROR_PERCENT = 100
# Istio's StringMatch keys for a header match's type.
MATCH_KEYS = {"Exact": "exact", "RegularExpression": "regex"}


def service_host(service: str, namespace: str) -> str:
    # Fully qualified, so the route means the same from a gateway in another namespace.
    return f"{service}.{namespace}.svc.cluster.local"


def _destination(service: str, namespace: str) -> dict[str, Any]:
    return {"host": service_host(service, namespace), "port": {"number": SERVICE_PORT}}


def _route(pairs: list[tuple[str, int]], namespace: str) -> list[dict[str, Any]]:
    return [{"destination": _destination(service, namespace), "weight": weight} for service, weight in pairs]


class IstioProvider:
    name = "istio"
    weighted = True
    route_kinds = (Kind(API_VERSION, KIND, "virtualservices"),)

    def build_routes(self, owner: Owner, spec: ModelDeploymentSpec, weights: Weights, *, mirror: int = 0,
                     headers_to_canary: bool = False) -> list[dict[str, Any]]:
        settings = spec.traffic.istio
        if settings is None:  # parse_spec rejects this; kept for a clear message if called directly
            raise ValueError("traffic.provider istio needs traffic.istio")
        route_spec: dict[str, Any] = {"hosts": list(settings.hosts)}
        if settings.gateways:
            # Without gateways Istio applies the route to mesh traffic ("mesh"); with
            # them, only to those gateways, exactly as the user wrote.
            route_spec["gateways"] = list(settings.gateways)
        http: list[dict[str, Any]] = []
        if spec.traffic.canary_headers:
            # Istio takes the first http route that matches: the header route first.
            headers = {h.name.lower(): {MATCH_KEYS[h.type]: h.value} for h in spec.traffic.canary_headers}
            http.append({"name": "canary-headers", "match": [{"headers": headers}],
                         "route": _route(header_backends(owner, headers_to_canary), owner.namespace)})
        weighted: dict[str, Any] = {"route": _route(backends(owner, weights), owner.namespace)}
        if mirror > 0:
            _, canary = backend_services(owner)
            weighted["mirror"] = _destination(canary, owner.namespace)
            weighted["mirrorPercentage"] = {"value": mirror}
        http.append(weighted)
        route_spec["http"] = http
        return [route_manifest(owner, API_VERSION, KIND, route_spec)]

    def read_weights(self, owner: Owner, live: LiveObjects, observed: Observed) -> Weights | None:
        weighted = _weighted_route(live.get((KIND, route_name(owner.name))))
        if weighted is None:
            return None
        stable_host, canary_host = (service_host(s, owner.namespace) for s in backend_services(owner))
        found: dict[str, float] = {}
        for destination in weighted.get("route") or []:
            host = (destination.get("destination") or {}).get("host", "")
            found[host] = found.get(host, 0) + number(destination.get("weight"), DEFAULT_DESTINATION_WEIGHT)
        return weights_by_backend(found, stable_host, canary_host)

    def read_mirror(self, owner: Owner, live: LiveObjects) -> int | None:
        weighted = _weighted_route(live.get((KIND, route_name(owner.name))))
        if weighted is None:
            return None
        _, canary = backend_services(owner)
        if (weighted.get("mirror") or {}).get("host") != service_host(canary, owner.namespace):
            return 0
        value = number((weighted.get("mirrorPercentage") or {}).get("value"), DEFAULT_MIRROR_PERCENT)
        return max(0, min(100, round(value)))


    def read_headers_to_canary(self, owner: Owner, live: LiveObjects) -> bool | None:
        route = live.get((KIND, route_name(owner.name)))
        _, canary = backend_services(owner)
        for http in ((route or {}).get("spec") or {}).get("http") or []:
            if http.get("match"):
                weighted = [(d.get("destination") or {}).get("host") for d in http.get("route") or []
                            if number(d.get("weight"), DEFAULT_DESTINATION_WEIGHT)]
                return weighted == [service_host(canary, owner.namespace)]
        return None


def _weighted_route(route: Any) -> dict[str, Any] | None:
    """The http route that carries the weights: the first without a match
    (the header route has one; others would be someone else's edit)."""
    if not route:
        return None
    for http in (route.get("spec") or {}).get("http") or []:
        if not http.get("match"):
            return http
    return None
