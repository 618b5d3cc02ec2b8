"""derive_status: (spec, what the cluster shows, previous status, now) -> new status.

Pure and deterministic: the same inputs give an identical dict, so the kube
layer writes status only when the result differs from what is stored.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from .. import conditions as c
from ..api.parsing import InvalidSpec
from ..api.spec import ModelDeploymentSpec
from ..api.status import MAX_HISTORY, HistoryEntry, ModelDeploymentStatus, RoleStatus, StableStatus, TrafficStatus
from ..builders.naming import cluster_url
from .health import Clock, Health, assess, stuck
from .observed import Observed, ObservedDeployment
from .phase import derive_phase
from .rollout import RolloutReport
from .transitions import condition, format_time, parse_time

DEPLOYED = "Deployed"
PROMOTED = "Promoted"
# History results after which that revision served as stable.
SERVED_RESULTS = (DEPLOYED, PROMOTED)


def derive_status(
    *,
    name: str,
    namespace: str,
    generation: int,
    spec: ModelDeploymentSpec | InvalidSpec,
    revision: str | None,
    observed: Observed,
    previous: Mapping[str, Any] | None,
    now: datetime,
    rollout: RolloutReport | None = None,
) -> dict[str, Any]:
    """The status to write, as a camelCase dict.

    `spec` is the parsed spec, or the InvalidSpec raised while parsing it (then
    `revision` is None and serving is left alone). `revision` is
    builders.compute_revision(spec, table). `previous` is the stored status.
    `rollout` is the rollout machine's report (Decision.report); without it
    the status describes the stable Deployment alone.
    """
    before = _parse_previous(previous)
    if isinstance(spec, InvalidSpec):
        return held_status(previous=previous, generation=generation, reason=c.INVALID_SPEC,
                           message=f"spec is invalid: {spec}", now=now)
    if rollout is not None and rollout.health is not None:
        health = rollout.health
    else:
        health = assess(spec, revision, observed, _clock(before, generation, now))

    if rollout is not None and not isinstance(spec, InvalidSpec):
        return _with_rollout(
            name=name, namespace=namespace, generation=generation, spec=spec, revision=revision,
            observed=observed, before=before, health=health, report=rollout, now=now,
        )

    status = ModelDeploymentStatus(
        observed_generation=generation,
        conditions=_conditions(before, health, generation, now),
        stable=_role(observed.stable, StableStatus),
        canary=_role(observed.canary, RoleStatus),
        traffic=_traffic(before, observed),
        rollout=before.rollout if observed.canary is not None else None,
        url=cluster_url(name, namespace),
        history=_history(before, spec, revision, health, now),
        message=health.message,
    )
    status.phase = derive_phase(status)
    return status.to_wire()


def held_status(
    *, previous: Mapping[str, Any] | None, generation: int, reason: str, message: str, now: datetime,
    traffic: TrafficStatus | None = None,
) -> dict[str, Any]:
    """Stalled for `reason`, everything else exactly as it was.

    For a spec the operator will not act on (invalid, refused by the API
    server, a child name another owner holds): serving is left alone, so the
    stable snapshot, the rollout's state, the traffic the route still carries
    and the history all stay as last written. Wiping them would let the next
    valid spec skip its canary (issue 9, defect 1). `traffic`: the split as
    measured now, where it moves without the operator (the replicas provider's
    ready-pod ratio); None keeps the one recorded (a route nobody writes).
    """
    before = _parse_previous(previous)
    status = before.model_copy(update={
        **({"traffic": traffic} if traffic is not None else {}),
        "observed_generation": generation,
        "conditions": _conditions(before, stuck(reason, message), generation, now),
        "message": message,
    })
    status.phase = derive_phase(status)
    return status.to_wire()


def _with_rollout(
    *,
    name: str,
    namespace: str,
    generation: int,
    spec: ModelDeploymentSpec,
    revision: str | None,
    observed: Observed,
    before: ModelDeploymentStatus,
    health: Health,
    report: RolloutReport,
    now: datetime,
) -> dict[str, Any]:
    """The status while the rollout machine runs: stable and canary as it renders
    them, the traffic it set (as read back), its progress and decisions."""
    before_history = before.model_copy(update={"history": [*before.history, *report.history][-MAX_HISTORY:]})
    status = ModelDeploymentStatus(
        observed_generation=generation,
        conditions=_conditions(before, health, generation, now),
        stable=_counted(report.stable, observed.stable),
        canary=_counted(report.canary, observed.canary),
        traffic=report.traffic,
        capacity=report.capacity,
        rollout=report.progress,
        url=cluster_url(name, namespace),
        history=_history(before_history, spec, revision, health, now),
        message=health.message,
    )
    status.phase = derive_phase(status)
    return status.to_wire()


def _counted(role: RoleStatus | StableStatus | None, deployment: ObservedDeployment | None) -> RoleStatus | StableStatus | None:
    """A role as the machine names it, with the replica counts its Deployment shows."""
    if role is None:
        return None
    if deployment is None:
        return role.model_copy(update={"replicas": 0, "ready_replicas": 0})
    return role.model_copy(update={"replicas": deployment.replicas, "ready_replicas": deployment.ready_replicas})


def _parse_previous(previous: Mapping[str, Any] | None) -> ModelDeploymentStatus:
    # A status we cannot read (hand-edited, older format) must not block
    # reconciling: start over from an empty one.
    try:
        return ModelDeploymentStatus.model_validate(previous or {})
    except ValidationError:
        return ModelDeploymentStatus()


def _clock(before: ModelDeploymentStatus, generation: int, now: datetime) -> Clock:
    reconciling = before.condition(c.RECONCILING)
    stalled = before.condition(c.STALLED)
    same_generation = before.observed_generation == generation
    if (
        stalled is not None
        and stalled.status == c.TRUE
        and stalled.reason in c.DEADLINE_REASONS
        and same_generation
    ):
        return Clock(now=now, started_at=now, deadline_already_passed=True)
    if reconciling is not None and reconciling.status == c.TRUE and same_generation:
        return Clock(now=now, started_at=parse_time(reconciling.last_transition_time))
    return Clock(now=now, started_at=now)


def _conditions(before: ModelDeploymentStatus, health: Health, generation: int, now: datetime):
    quiet = ""
    return [
        condition(before, c.READY, health.ready, health.reason, health.message, generation=generation, now=now),
        condition(
            before,
            c.RECONCILING,
            health.reconciling,
            health.reason if health.reconciling else c.RECONCILED,
            health.message if health.reconciling else quiet,
            generation=generation,
            now=now,
        ),
        condition(
            before,
            c.STALLED,
            health.stalled,
            health.reason if health.stalled else c.NOT_STALLED,
            health.message if health.stalled else quiet,
            generation=generation,
            now=now,
        ),
    ]


def _role(deployment: ObservedDeployment | None, model: type[RoleStatus]) -> RoleStatus | None:
    if deployment is None:
        return None
    return model(
        revision=deployment.revision,
        model_version=deployment.model_version,
        replicas=deployment.replicas,
        ready_replicas=deployment.ready_replicas,
    )


def _traffic(before: ModelDeploymentStatus, observed: Observed) -> TrafficStatus | None:
    if observed.canary is not None:
        return before.traffic  # weights belong to the rollout machine while a canary runs
    # No canary pods exist, so whatever routes requests can only reach stable.
    return TrafficStatus(stable=100, canary=0, verified=observed.stable is not None)


def _history(
    before: ModelDeploymentStatus,
    spec: ModelDeploymentSpec | InvalidSpec,
    revision: str | None,
    health: Health,
    now: datetime,
) -> list[HistoryEntry]:
    history = list(before.history)
    if not health.ready or isinstance(spec, InvalidSpec) or revision is None:
        return history
    # Only what took over serving counts: returning to the stable revision
    # after a rollback or an aborted canary is not a new deployment.
    serving = next((entry for entry in reversed(history) if entry.result in SERVED_RESULTS), None)
    if serving is not None and serving.revision == revision:
        return history
    history.append(
        HistoryEntry(
            revision=revision,
            model_version=spec.model.version,
            uri=spec.model.uri,
            result=DEPLOYED,
            registry=spec.model.resolved,
            time=format_time(now),
        )
    )
    return history[-MAX_HISTORY:]
