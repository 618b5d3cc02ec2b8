"""`spec.traffic`: how requests are split between stable and canary."""

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

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
MAX_CANARY_HEADERS = 8
NO_HEADER_ROUTING = ("traffic.canaryHeaders needs provider gatewayAPI or istio: with replicas one Service "
                     "spreads requests over the pods and cannot route by header")
# RFC 7230 token characters, as the Gateway API's HTTPHeaderName.
HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$"


class CanaryHeader(SpecModel):
    """A request header that sends a request to the canary, whatever the weight."""

    name: str = Field(min_length=1, max_length=256, pattern=HEADER_NAME, description="Header name, e.g. x-model-canary.")
    value: str = Field(min_length=1, max_length=1024, description="The value to match.")
    type: Literal["Exact", "RegularExpression"] = Field(
        "Exact", description="Exact match, or a regular expression (RE2 in Istio and most gateways)."
    )

    @field_validator("value")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise FieldProblem((), "a header value cannot hold control characters")
        return value

    @model_validator(mode="after")
    def _compiles(self) -> "CanaryHeader":
        if self.type == "RegularExpression":
            try:
                re.compile(self.value)
            except re.error as error:
                raise FieldProblem("value", f"not a regular expression: {error}") from None
        return self


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
                    "rule": "!has(self.canaryHeaders) || size(self.canaryHeaders) == 0 || "
                    "(has(self.provider) && self.provider != 'replicas')",
                    "message": NO_HEADER_ROUTING,
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
    canary_headers: list[CanaryHeader] = Field(
        default_factory=list,
        max_length=MAX_CANARY_HEADERS,
        description="Requests carrying all these headers go to the canary while it has a ready pod, whatever the "
        "weight (at 0% too): internal users and smoke tests reach it first. gatewayAPI and istio only.",
    )

    @model_validator(mode="after")
    def _settings_match_provider(self) -> "TrafficSpec":
        if self.canary_headers and self.provider == "replicas":
            raise FieldProblem("canaryHeaders", NO_HEADER_ROUTING.removeprefix("traffic.canaryHeaders "))
        given = {"gatewayAPI": self.gateway_api, "istio": self.istio}
        if self.provider in given and given[self.provider] is None:
            raise FieldProblem(self.provider, f"required when provider is {self.provider}")
        for provider, settings in given.items():
            if settings is not None and provider != self.provider:
                raise FieldProblem(
                    provider, f"set, but provider is {self.provider}: remove it or set provider: {provider}"
                )
        return self
