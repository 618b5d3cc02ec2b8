"""`istio`: a VirtualService `<name>` with weighted destinations (the role Services)."""

from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..builders.kinds import Kind
from ..builders.ownership import Owner
from ..builders.service import SERVICE_PORT
from ..status.observed import Observed
from .provider import LiveObjects
from .routes import backend_services, backends, number, route_metadata, route_name, weights_by_backend
from .weights import Weights

API_VERSION = "networking.istio.io/v1"
KIND = "VirtualService"
# Istio: a destination without a weight takes all the traffic when it is the only one.
DEFAULT_DESTINATION_WEIGHT = 100


def service_host(service: str, namespace: str) -> str:
    # Fully qualified, so the route means the same from a gateway in another namespace.
    return f"{service}.{namespace}.svc.cluster.local"


class IstioProvider:
    name = "istio"
    weighted = True
    route_kinds = (Kind(API_VERSION, KIND, "virtualservices"),)

    def build_routes(self, owner: Owner, spec: ModelDeploymentSpec, weights: Weights) -> list[dict[str, Any]]:
        settings = spec.traffic.istio
        if settings is None:  # parse_spec rejects this; kept for a clear message if called directly
            raise ValueError("traffic.provider istio needs traffic.istio")
        route_spec: dict[str, Any] = {"hosts": list(settings.hosts)}
        if settings.gateways:
            # Without gateways Istio applies the route to mesh traffic ("mesh"); with
            # them, only to those gateways, exactly as the user wrote.
            route_spec["gateways"] = list(settings.gateways)
        route_spec["http"] = [
            {
                "route": [
                    {
                        "destination": {
                            "host": service_host(service, owner.namespace),
                            "port": {"number": SERVICE_PORT},
                        },
                        "weight": weight,
                    }
                    for service, weight in backends(owner, weights)
                ]
            }
        ]
        return [{"apiVersion": API_VERSION, "kind": KIND, "metadata": route_metadata(owner), "spec": route_spec}]

    def read_weights(self, owner: Owner, live: LiveObjects, observed: Observed) -> Weights | None:
        route = live.get((KIND, route_name(owner.name)))
        if not route:
            return None
        http = (route.get("spec") or {}).get("http") or []
        if not http:
            return None
        stable_host, canary_host = (service_host(s, owner.namespace) for s in backend_services(owner))
        found: dict[str, float] = {}
        for destination in http[0].get("route") or []:
            host = (destination.get("destination") or {}).get("host", "")
            found[host] = found.get(host, 0) + number(destination.get("weight"), DEFAULT_DESTINATION_WEIGHT)
        return weights_by_backend(found, stable_host, canary_host)
