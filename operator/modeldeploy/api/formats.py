"""Small reusable string types with their wire constraints."""

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field

DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
# models:/ is MLflow's registry scheme (one slash); its exact shape: api/registry.py.
URI_PATTERN = r"^((s3|gs|https?|pvc|hf)://|models:/).+"
URI_SCHEMES = ("s3", "gs", "http", "https", "pvc", "hf", "models")

# Kubernetes resource quantity, e.g. "500m", "2Gi", "1.5", "1e3".
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)

# Label values: at most 63 characters, alphanumeric at both ends (may be empty).
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


def _matching(pattern: str, what: str):
    compiled = re.compile(pattern)

    def check(text: str) -> str:
        if not compiled.match(text):
            raise ValueError(f"{text!r} is not {what}")
        return text

    return AfterValidator(check)


DNS1123Label = Annotated[
    str,
    Field(min_length=1, max_length=63, json_schema_extra={"pattern": DNS1123_LABEL_PATTERN}),
    _matching(DNS1123_LABEL_PATTERN, "a DNS-1123 label (lowercase letters, digits and '-')"),
]

DNS1123Subdomain = Annotated[
    str,
    Field(min_length=1, max_length=253, json_schema_extra={"pattern": DNS1123_SUBDOMAIN_PATTERN}),
    _matching(DNS1123_SUBDOMAIN_PATTERN, "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')"),
]

ModelUri = Annotated[
    str,
    Field(max_length=2048, json_schema_extra={"pattern": URI_PATTERN}),
    _matching(URI_PATTERN, f"a model URI with a scheme among {', '.join(URI_SCHEMES)} (e.g. s3://bucket/path, models:/fraud@champion)"),
]

def _check_quantity(quantity: object) -> object:
    # Checked before the int|str union so a bad value yields one clear message
    # instead of one per union member. Floats are refused: the API server's
    # int-or-string type would refuse them too ("0.5" must be quoted).
    if isinstance(quantity, bool) or not isinstance(quantity, (int, str)):
        raise ValueError(f"{quantity!r} is not a resource quantity: write it as a string, e.g. \"500m\" or \"2Gi\"")
    if isinstance(quantity, str) and not re.match(QUANTITY_PATTERN, quantity):
        raise ValueError(f"{quantity!r} is not a resource quantity (e.g. 500m, 2Gi, 1)")
    return quantity


Quantity = Annotated[
    int | str,
    Field(json_schema_extra={"pattern": QUANTITY_PATTERN}),
    BeforeValidator(_check_quantity),
]

HOSTNAME_PATTERN = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

Hostname = Annotated[
    str,
    Field(min_length=1, max_length=253, json_schema_extra={"pattern": HOSTNAME_PATTERN}),
    _matching(HOSTNAME_PATTERN, "a hostname such as fraud.example.com or *.example.com"),
]

ISTIO_GATEWAY_PATTERN = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"

IstioGateway = Annotated[
    str,
    Field(min_length=1, max_length=253, json_schema_extra={"pattern": ISTIO_GATEWAY_PATTERN}),
    _matching(ISTIO_GATEWAY_PATTERN, "an Istio gateway reference such as istio-system/public-gw"),
]
