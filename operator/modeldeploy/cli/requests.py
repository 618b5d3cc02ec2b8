"""`modeldeploy promote` / `modeldeploy abort` (pure): may the request be
made, and what will it do.

The request itself is an annotation the operator consumes and removes
(rollout.annotations); this module only judges the object as read, so the
refusals and the "what will happen" lines are tested without a cluster.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.status import Stage
from .errors import FAILED, CliError
from ..rollout.annotations import ABORT, PROMOTE

PROMOTE_ACTION, ABORT_ACTION = "promote", "abort"
ANNOTATIONS = {PROMOTE_ACTION: PROMOTE, ABORT_ACTION: ABORT}


@dataclass(frozen=True)
class Request:
    annotation: str
    # The annotation's value: the canary revision judged here, so the
    # operator acts only on that canary, never on one that replaced it.
    value: str
    announcement: str  # printed once the annotation is set


def plan_request(md: Mapping[str, Any], action: str) -> Request:
    """The request to make on `md`, or CliError(FAILED) saying why there is nothing to do."""
    meta = md.get("metadata") or {}
    name = meta.get("name", "?")
    status = md.get("status") or {}
    rollout = status.get("rollout") or {}
    stage = rollout.get("stage") or Stage.STABLE
    revision = rollout.get("revision") or ""
    canary = f"{rollout.get('modelVersion') or '?'} (revision {revision or '?'})"
    stable = (status.get("stable") or {}).get("modelVersion") or "?"

    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        # The spec changed since the status was written: the canary the
        # operator acts on may not be the one the status shows.
        raise CliError(FAILED, f"{name}: the operator has not yet reported on generation {generation} "
                               f"(status is for {observed}); wait for it and try again")
    if stage not in (Stage.CANARY, Stage.PROMOTING):
        why = (f"it rolled back {canary}; change the spec to try a new version" if stage == Stage.ROLLED_BACK
               else f"stable {stable} serves alone")
        raise CliError(FAILED, f"nothing to {action}: {name} has no canary in flight ({why})")

    if action == PROMOTE_ACTION:
        if stage == Stage.PROMOTING:
            raise CliError(FAILED, f"nothing to promote: {name} is already promoting {canary}")
        remaining = max(int(rollout.get("totalSteps") or 0) - int(rollout.get("step") or 0), 0)
        skip = f"skip the remaining {remaining} step{'s' if remaining != 1 else ''} and " if remaining else ""
        return Request(PROMOTE, revision, f"promote requested: {name} will {skip}promote {canary}, replacing stable {stable}")

    doing = "stop promoting" if stage == Stage.PROMOTING else "roll back"
    return Request(ABORT, revision, f"abort requested: {name} will {doing} {canary} and send all traffic to stable {stable}")


def pending(md: Mapping[str, Any]) -> list[str]:
    """Requests set earlier and not yet consumed (the operator removes them once seen)."""
    annotations = (md.get("metadata") or {}).get("annotations") or {}
    return [key for key in (PROMOTE, ABORT) if key in annotations]
