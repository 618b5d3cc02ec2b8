"""The stable pod-spec snapshot.

While a newer revision is tried out (or after it was rolled back) the spec names
the new revision, yet the stable Deployment must keep rendering the old one. So
the pod-shaping part of the stable revision's spec is kept in status
(`status.stable.spec`), and the stable role is rendered from the current spec
with those fields put back. The fields are the spec side of
builders.revision.pod_inputs: everything else (replicas, autoscaling, rollout,
traffic) may change during a canary and applies to stable at once.
"""

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import TypeAdapter

from ..api.spec import ModelDeploymentSpec

# camelCase (wire) name -> snake_case field of ModelDeploymentSpec.
POD_SHAPING_FIELDS = {
    "model": "model",
    "runtime": "runtime",
    "resources": "resources",
    "podMetadata": "pod_metadata",
    "nodeSelector": "node_selector",
    "tolerations": "tolerations",
    "serviceAccountName": "service_account_name",
    "affinity": "affinity",
    "topologySpreadConstraints": "topology_spread_constraints",
    "priorityClassName": "priority_class_name",
    "runtimeClassName": "runtime_class_name",
    "imagePullSecrets": "image_pull_secrets",
    "podTemplatePatch": "pod_template_patch",
}


def take_snapshot(spec: ModelDeploymentSpec) -> dict[str, Any]:
    """The pod-shaping fields of `spec`, as JSON for status (unset fields left out)."""
    dump = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {wire: dump[wire] for wire in POD_SHAPING_FIELDS if wire in dump}


def spec_for_stable(spec: ModelDeploymentSpec, snapshot: Mapping[str, Any]) -> ModelDeploymentSpec:
    """`spec` with its pod-shaping fields replaced by the snapshot's.

    Each field is validated by its own type and constraints; the whole is not
    re-validated on purpose: a cross-field rule of the *new* spec (autoscaling
    needs a CPU request) must not reject the old pods, which passed the rules
    when they were the spec.
    """
    parts = {}
    for wire, field in POD_SHAPING_FIELDS.items():
        if wire in snapshot:
            parts[field] = _FIELD_TYPES[field].validate_python(snapshot[wire])
        else:
            parts[field] = ModelDeploymentSpec.model_fields[field].get_default(call_default_factory=True)
    return spec.model_copy(update=parts)


def _field_type(field: str) -> TypeAdapter:
    info = ModelDeploymentSpec.model_fields[field]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)


_FIELD_TYPES = {field: _field_type(field) for field in POD_SHAPING_FIELDS.values()}
