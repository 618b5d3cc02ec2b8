"""`spec.traffic`: how requests are split between stable and canary."""

from typing import Literal

from pydantic import Field, model_validator

from .base import SpecModel
from .formats import DNS1123Label, DNS1123Subdomain, Hostname, IstioGateway
from .problems import FieldProblem

MAX_HOSTS = 16


class ParentRef(SpecModel):
    """A Gateway API parent (usually a Gateway) the HTTPRoute attaches to."""

    name: DNS1123Subdomain
    namespace: DNS1123Label | None = None
    section_name: DNS1123Subdomain | None = None


class GatewayAPITraffic(SpecModel):
    parent_refs: list[ParentRef] = Field(min_length=1, max_length=MAX_HOSTS)
    hostnames: list[Hostname] = Field(default_factory=list, max_length=MAX_HOSTS)


class IstioTraffic(SpecModel):
    hosts: list[Hostname] = Field(min_length=1, max_length=MAX_HOSTS)
    gateways: list[IstioGateway] = Field(
        default_factory=list,
        max_length=MAX_HOSTS,
        description="Istio gateways as namespace/name; empty means mesh-internal traffic only.",
    )


PROVIDERS = ("replicas", "gatewayAPI", "istio")


class TrafficSpec(SpecModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    # has() guards: the API server also checks these rules against the
                    # schema default `{}`, before the nested provider default applies.
                    "rule": "!has(self.provider) || self.provider != 'gatewayAPI' || has(self.gatewayAPI)",
                    "message": "traffic.provider gatewayAPI needs traffic.gatewayAPI",
                },
                {
                    "rule": "!has(self.provider) || self.provider != 'istio' || has(self.istio)",
                    "message": "traffic.provider istio needs traffic.istio",
                },
                {
                    "rule": "((has(self.provider) && self.provider == 'gatewayAPI') || !has(self.gatewayAPI)) && "
                    "((has(self.provider) && self.provider == 'istio') || !has(self.istio))",
                    "message": "traffic settings are given for a provider that is not selected",
                },
            ]
        }
    }

    provider: Literal["replicas", "gatewayAPI", "istio"] = Field(
        "replicas",
        description="replicas splits by pod counts behind one Service; gatewayAPI and istio split by weights.",
    )
    gateway_api: GatewayAPITraffic | None = Field(None, alias="gatewayAPI")
    istio: IstioTraffic | None = None

    @model_validator(mode="after")
    def _settings_match_provider(self) -> "TrafficSpec":
        given = {"gatewayAPI": self.gateway_api, "istio": self.istio}
        if self.provider in given and given[self.provider] is None:
            raise FieldProblem(self.provider, f"required when provider is {self.provider}")
        for provider, settings in given.items():
            if settings is not None and provider != self.provider:
                raise FieldProblem(
                    provider, f"set, but provider is {self.provider}: remove it or set provider: {provider}"
                )
        return self
