"""`gatewayAPI`: an HTTPRoute `<name>` with weighted backendRefs to the role Services."""

from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..builders.kinds import Kind
from ..builders.ownership import Owner
from ..builders.service import SERVICE_PORT
from ..status.observed import Observed
from .provider import LiveObjects
from .routes import backend_services, backends, number, route_metadata, route_name, weights_by_backend
from .weights import Weights

API_VERSION = "gateway.networking.k8s.io/v1"
KIND = "HTTPRoute"
# The Gateway API defaults a backendRef's weight to 1 when it is left out.
DEFAULT_BACKEND_WEIGHT = 1


class GatewayAPIProvider:
    name = "gatewayAPI"
    weighted = True
    route_kinds = (Kind(API_VERSION, KIND, "httproutes"),)

    def build_routes(self, owner: Owner, spec: ModelDeploymentSpec, weights: Weights) -> list[dict[str, Any]]:
        settings = spec.traffic.gateway_api
        if settings is None:  # parse_spec rejects this; kept for a clear message if called directly
            raise ValueError("traffic.provider gatewayAPI needs traffic.gatewayAPI")
        route_spec: dict[str, Any] = {
            "parentRefs": [ref.model_dump(mode="json", by_alias=True, exclude_none=True) for ref in settings.parent_refs]
        }
        if settings.hostnames:
            route_spec["hostnames"] = list(settings.hostnames)
        route_spec["rules"] = [
            {
                "backendRefs": [
                    {"name": service, "port": SERVICE_PORT, "weight": weight}
                    for service, weight in backends(owner, weights)
                ]
            }
        ]
        return [{"apiVersion": API_VERSION, "kind": KIND, "metadata": route_metadata(owner), "spec": route_spec}]

    def read_weights(self, owner: Owner, live: LiveObjects, observed: Observed) -> Weights | None:
        route = live.get((KIND, route_name(owner.name)))
        if not route:
            return None
        rules = (route.get("spec") or {}).get("rules") or []
        if not rules:
            return None
        # Only the first rule is ours; more rules would be someone else's edit.
        found = {
            ref.get("name", ""): number(ref.get("weight"), DEFAULT_BACKEND_WEIGHT)
            for ref in rules[0].get("backendRefs") or []
        }
        return weights_by_backend(found, *backend_services(owner))
