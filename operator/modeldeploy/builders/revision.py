"""The revision: a short hash of everything that reaches the pod template.

Two specs with the same revision run identical pods, so a revision change is
exactly "a rollout is needed". Replicas, autoscaling, rollout and traffic
settings are left out on purpose: scaling or re-tuning a rollout must not
start one.
"""

import dataclasses
import hashlib
import json

from ..api.spec import ModelDeploymentSpec
from ..runtimes import ResolvedRuntime, RuntimeTable, resolve_runtime

REVISION_LENGTH = 10


def pod_inputs(spec: ModelDeploymentSpec, runtime: ResolvedRuntime) -> dict:
    """The parts of the spec (and the runtime resolved for it) that shape the pods."""
    dump = spec.model_dump(mode="json", by_alias=True)
    # A models:/ URI's record (registry version, run, the URI asked) stays out:
    # the artifact URI it resolved to identifies the revision, however it was asked.
    inputs = {
        "model": {key: value for key, value in dump["model"].items() if key != "resolved"},
        "runtime": _fields(runtime),  # includes the table entry and storage initializer
        "resources": dump["resources"],
        "podMetadata": dump["podMetadata"],
        "nodeSelector": dump["nodeSelector"],
        "tolerations": dump["tolerations"],
        "serviceAccountName": dump["serviceAccountName"],
    }
    for added_later in SCHEDULING_FIELDS:
        if dump[added_later] is not None:  # absent when unset: older revisions keep their hash
            inputs[added_later] = dump[added_later]
    return inputs


SCHEDULING_FIELDS = ("affinity", "topologySpreadConstraints", "priorityClassName", "runtimeClassName",
                     "imagePullSecrets", "podTemplatePatch")


def compute_revision(spec: ModelDeploymentSpec, table: RuntimeTable) -> str:
    """10 hex characters of sha256 over canonical JSON: the same in every process."""
    return revision_of(spec, resolve_runtime(spec, table))


def revision_of(spec: ModelDeploymentSpec, runtime: ResolvedRuntime) -> str:
    """The revision of `spec` running `runtime` (e.g. the one stable was rolled out with)."""
    canonical = json.dumps(pod_inputs(spec, runtime), sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def _fields(runtime: ResolvedRuntime) -> dict:
    # What dataclasses.asdict(runtime) gives, without its deep copies (a third
    # of a reconcile pass): the result is only serialized, never kept or
    # changed, and no field is itself a dataclass (the table models go through
    # _plain, the env dicts and tuples serialize as they are).
    fields = {field.name: getattr(runtime, field.name) for field in _RUNTIME_FIELDS}
    for added_later in ("drain_seconds", "load_timeout_seconds", "spread_replicas", "metrics_port"):
        if not fields[added_later]:
            # Absent when unset, so every revision hashed before it stays the same.
            del fields[added_later]
    return fields


_RUNTIME_FIELDS = dataclasses.fields(ResolvedRuntime)


def _plain(value):
    # Table models (e.g. the readiness probe) inside the resolved runtime; the
    # storage initializer as it is recorded (its `cache` only when true).
    if hasattr(value, "to_wire"):
        return value.to_wire()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True)
    raise TypeError(f"cannot hash {type(value).__name__}")
