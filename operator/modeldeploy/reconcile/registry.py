"""models:/ URIs in the plan: the spec as the registry resolved it, and what
the status says about it. Pure: the registry is read by the kube layer
(kube/registry.py), and its answer comes in as World.registry.

The resolved spec names the artifact URI (what the storage initializer
downloads) and records the registry version and run in spec.model.resolved,
so the revision hash follows the artifact, not the alias: an alias that moves
makes a new revision, which rolls out through a canary like any spec change.
pollInterval is dropped from it: re-tuning how often the alias is read rolls
nothing out.
"""

from collections.abc import Mapping
from typing import Any

from .. import conditions as c
from ..api.registry import ModelStatus, RegistryLookup, is_registry_uri
from ..api.spec import ModelDeploymentSpec
from ..rollout.state import RolloutState


def follows_registry(spec: ModelDeploymentSpec) -> bool:
    return is_registry_uri(spec.model.uri)


def resolve_spec(spec: ModelDeploymentSpec, lookup: RegistryLookup | None) -> ModelDeploymentSpec | None:
    """`spec` with its models:/ URI replaced by the artifact it resolved to;
    None when there is no usable answer (then hold: registry_hold_message).
    A later read that failed (the registry down while an alias is followed)
    leaves the last answer in force: the rollout goes on being judged (a
    failing canary is still rolled back) and the status says the registry
    is unavailable (registry_note)."""
    resolution = lookup.resolution if lookup is not None else None
    if resolution is None or resolution.asked != spec.model.uri:
        return None
    model = spec.model.model_copy(update={"uri": resolution.uri, "registry": None, "resolved": resolution.record()})
    return spec.model_copy(update={"model": model})


def registry_hold_message(spec: ModelDeploymentSpec, lookup: RegistryLookup | None, state: RolloutState) -> str:
    """Why a models:/ spec is held, and what serves meanwhile."""
    why = (lookup.error if lookup is not None and lookup.error else "not read yet")
    asked = f"{spec.model.uri} could not be resolved in the MLflow registry ({why})"
    if state.stable is None:
        return f"{asked}; nothing is created until it resolves, the operator retries"
    return (f"{asked}; stable {state.stable.model_version} (revision {state.stable.revision}) keeps serving "
            f"unchanged, the operator retries")


def following_note(spec: ModelDeploymentSpec) -> str | None:
    """Said in the Ready condition and status.message of a model that follows
    an alias: the cluster may change without a commit (GitOps users)."""
    registry = spec.model.registry
    if registry is None or registry.poll_interval is None:
        return None
    return (f"follows the MLflow registry: {spec.model.uri} is re-read every {registry.poll_interval}, "
            f"and a move rolls out without a change to this spec")


def registry_note(spec: ModelDeploymentSpec, lookup: RegistryLookup | None) -> str | None:
    """The last read of the registry failed, an earlier answer stays in force."""
    if lookup is None or lookup.error is None or lookup.resolution is None:
        return None
    return (f"{c.REGISTRY_UNAVAILABLE}: {lookup.error}; {spec.model.uri} stays at version "
            f"{lookup.resolution.version} as last read, the operator retries")


def with_registry(status: dict[str, Any], asked: ModelDeploymentSpec, resolved: ModelDeploymentSpec,
                  lookup: RegistryLookup | None) -> dict[str, Any]:
    """The status with status.model (what the URI resolves to now) and, for an
    alias followed or a registry that did not answer, a note in Ready and the
    message."""
    record = resolved.model.resolved
    if record is None:
        return status
    poll = asked.model.registry.poll_interval if asked.model.registry is not None else None
    model = ModelStatus(uri=record.uri, version=record.version, run_id=record.run_id,
                        resolved_uri=resolved.model.uri, poll_interval=poll)
    status = {**status, "model": model.model_dump(mode="json", by_alias=True, exclude_none=True)}
    notes = [n for n in (registry_note(asked, lookup), following_note(asked)) if n]
    if not notes:
        return status
    note = "; ".join(notes)
    conditions = [_noted(cond, note) if cond.get("type") == c.READY else cond for cond in status.get("conditions", [])]
    message = status.get("message")
    return {**status, "conditions": conditions, "message": f"{message}; {note}" if message else note}


def _noted(cond: Mapping[str, Any], note: str) -> dict[str, Any]:
    message = cond.get("message")
    return {**cond, "message": f"{message}; {note}" if message else note}
