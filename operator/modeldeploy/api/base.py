"""Base classes shared by every API model.

The wire format is camelCase (Kubernetes convention); Python code uses snake_case.
Spec models forbid unknown fields so that a typo like `autoscalling` is reported
instead of silently ignored (a common KServe complaint). Status models ignore
unknown fields because the status we read back may have been written by an older
or newer operator version.
"""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

_WIRE = dict(
    alias_generator=to_camel,
    validate_by_alias=True,
    validate_by_name=True,
    serialize_by_alias=True,
)


class SpecModel(BaseModel):
    """A part of `spec`: strict, immutable, camelCase on the wire."""

    model_config = ConfigDict(**_WIRE, extra="forbid", frozen=True)


class StatusModel(BaseModel):
    """A part of `status`: tolerant of fields it does not know."""

    model_config = ConfigDict(**_WIRE, extra="ignore")
