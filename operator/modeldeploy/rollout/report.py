"""From the machine's state to what status says (status.rollout.RolloutReport)."""

from .. import conditions as c
from ..api.status import CapacityStatus, CheckStatus, HistoryEntry, RoleStatus, RolloutProgress, StableStatus, TrafficStatus
from ..status.health import Health, converging, lacks_resources, loading_message, stuck, unschedulable_message
from ..status.observed import ready_canary_pods
from ..status.rollout import RolloutReport
from ..status.transitions import format_time
from ..traffic.provider import TrafficProvider
from ..traffic.replicas import achieved_weights
from ..traffic.weights import Weights
from ..builders.labels import NAME as NAME_LABEL
from .capacity import Budget
from . import checks  # checks.canary_pods: build_report's canary_pods is a count
from .inputs import Inputs
from .sizing import canary_replicas, split_weight
from .state import ACTIVE, RolloutState, Stage


def build_report(
    inputs: Inputs,
    state: RolloutState,
    *,
    provider: TrafficProvider,
    weights: Weights,
    total_steps: int,
    base: int = 0,
    canary_pods: int | None = None,
    history: tuple[HistoryEntry, ...] = (),
    stable_pods: int | None = None,
    budget: Budget | None = None,
    stable_ready: int | None = None,
    mirror: int = 0,
    headers_to_canary: bool | None = None,
    client_role: str | None = None,
) -> RolloutReport:
    """`weights`: what the route is written with this pass; `canary_pods`:
    the canary Deployment's size after this pass (None: it is removed);
    `stable_pods`: the stable Deployment's (None: the HPA's count);
    `budget`: capacity mode Replace's pod budget; `stable_ready`: its count
    of stable's ready pods that stay; `mirror`: the share of requests the
    route copies to the canary; `headers_to_canary`: where requests with the
    canary headers go (None: the spec names none); `client_role`: the one
    role the client Service selects (BlueGreen with replicas), else None."""
    seen = inputs.weights if provider.weighted else _ready_split_after(inputs, state, canary_pods, stable_pods,
                                                                        stable_ready, client_role)
    return RolloutReport(
        stable=_stable(state),
        canary=_canary(state),
        traffic=traffic_status(seen, weights, provider).model_copy(
            update={"mirror": mirror or None, "headers_to_canary": headers_to_canary}),
        progress=_progress(state, total_steps).model_copy(update={
            "strategy": "BlueGreen" if inputs.spec.rollout.strategy == "BlueGreen" and state.canary else None}),
        history=history,
        health=_health(state, total_steps, _rounding(state, provider, base), _waiting_for_room(inputs, state),
                       _loading(inputs, state), _shadow(state, mirror)),
        capacity=_capacity(inputs, budget, stable_pods, canary_pods),
    )


def _capacity(inputs: Inputs, budget: Budget | None, stable: int | None, canary: int | None) -> CapacityStatus | None:
    if budget is None:
        return None
    stable, canary = stable or 0, canary or 0
    # replicas and selector: the scale subresource's status, which the HPA
    # reads (it averages the CPU of the pods the selector picks: both roles).
    return CapacityStatus(budget=budget.total, min_ready=budget.floor, stable=stable, canary=canary,
                          surge=max(0, stable + canary - budget.replicas), replicas=stable + canary,
                          selector=f"{NAME_LABEL}={inputs.name}")


def _loading(inputs: Inputs, state: RolloutState) -> str:
    return loading_message(checks.canary_pods(inputs, state))


def _waiting_for_room(inputs: Inputs, state: RolloutState) -> str:
    return unschedulable_message(checks.canary_pods(inputs, state))


def traffic_status(seen: Weights | None, desired: Weights, provider: TrafficProvider) -> TrafficStatus:
    """The split the cluster carries once this pass's writes land (the status
    is written after them, so it never lags the route: issue 9, invariant 4).

    Weighted providers: the weights the route is written with, `verified`
    once they were read back from it. `replicas`: the ready-pod ratio behind
    the client Service after this pass (`seen`), measured, so verified once
    there is one to measure."""
    if provider.weighted:
        return TrafficStatus(stable=desired.stable, canary=desired.canary, verified=seen == desired)
    if seen is None:
        return TrafficStatus(stable=desired.stable, canary=desired.canary, verified=False)
    return TrafficStatus(stable=seen.stable, canary=seen.canary, verified=True)


def _ready_split_after(inputs: Inputs, state: RolloutState, canary_pods: int | None,
                       stable_pods: int | None = None, stable_ready: int | None = None,
                       client_role: str | None = None) -> Weights | None:
    """The ready pods of both roles behind the client Service once this pass
    has scaled or removed the canary (and scaled stable); canary pods by
    revision (status.observed.ready_canary_pods)."""
    observed = inputs.observed
    stable = observed.stable.ready_replicas if observed.stable is not None else 0
    if stable_ready is not None:  # capacity mode Replace: the pods that stay (a rolling update replaces the others)
        stable = stable_ready
    fixed = stable_pods if stable_pods is not None else inputs.spec.fixed_replicas
    if fixed is not None:
        stable = min(stable, fixed)
    revision = state.canary.revision if state.canary else None
    if state.stage not in ACTIVE and observed.canary is not None:
        # Capacity mode Replace handing the pods back: the canary Deployment
        # runs on as it is, whatever the state records as the last canary.
        revision = observed.canary.revision
    canary = 0 if canary_pods is None else min(ready_canary_pods(observed.pods, revision, observed.canary),
                                                canary_pods)
    return achieved_weights(stable, canary, client_role)


def _stable(state: RolloutState) -> StableStatus | None:
    if state.stable is None:
        return None
    return StableStatus(
        revision=state.stable.revision, model_version=state.stable.model_version, spec=dict(state.stable.snapshot),
        runtime=dict(state.stable.runtime) if state.stable.runtime is not None else None,
    )


def _canary(state: RolloutState) -> RoleStatus | None:
    if state.stage not in ACTIVE or state.canary is None:
        return None
    return RoleStatus(revision=state.canary.revision, model_version=state.canary.model_version)


def _progress(state: RolloutState, total_steps: int) -> RolloutProgress:
    canary = state.canary
    return RolloutProgress(
        stage=state.stage.value,
        revision=canary.revision if canary else None,
        model_version=canary.model_version if canary else None,
        uri=canary.uri if canary else None,
        registry=canary.registry if canary else None,
        step=state.step,
        total_steps=total_steps,
        step_started_at=_time(state.step_started_at),
        weight=state.weight,
        mirror=state.mirror or None,
        paused_reason=state.paused_reason,
        paused_by=state.paused_by,
        failed_checks=state.failed_checks,
        consecutive_errors=state.consecutive_errors,
        stable_floor=state.stable_floor,
        restarts_seen=state.restarts_seen,
        last_analysis_at=_time(state.last_analysis_at),
        not_ready_since=_time(state.not_ready_since),
        message=state.message,
        canary_started_at=_time(state.canary_started_at),
        check=CheckStatus(name=state.check.name, job=state.check.job, at=state.check.at or None,
                          started_at=_time(state.check.started_at), timeout_seconds=state.check.timeout_seconds)
        if state.check is not None and state.stage in ACTIVE else None,
        passed_checks=list(state.passed_checks),
        decisions=list(state.decisions),
    )


def _rounding(state: RolloutState, provider: TrafficProvider, base: int) -> str:
    """What the replicas provider makes of the weight: whole pods only."""
    if provider.weighted or state.stage != Stage.CANARY or state.weight == 0:
        return ""
    pods = canary_replicas(base, state.weight, weighted=False)
    achieved = split_weight(base, pods)
    if achieved == state.weight:
        return ""
    return (f" (setWeight {state.weight} rounds to {achieved}%: the replicas provider splits by whole pods, "
            f"{pods} canary next to {base} stable)")


def _shadow(state: RolloutState, mirror: int) -> str:
    """What the canary sees besides its weight: copies of requests."""
    if mirror == 0:
        return ""
    if mirror != state.mirror:
        return (f", and a copy of every request (shadow: setMirror asks {state.mirror}%, but the installed Gateway "
                f"API keeps no mirror percentage, so the whole stream is copied)")
    return f", and a copy of {mirror}% of the requests (shadow: its answers are discarded)"


def _health(state: RolloutState, total_steps: int, rounding: str = "", unschedulable: str = "",
            loading: str = "", shadow: str = "") -> Health | None:
    canary, stable = state.canary, state.stable
    if canary is None and stable is not None and state.stage == Stage.STABLE and state.message:
        # A new revision waiting while the model is scaled to zero (machine._waits_at_zero).
        return converging(c.WAITING_FOR_SCALE_UP, f"{state.message}; stable {stable.model_version} "
                                                  f"(revision {stable.revision}) serves when scaled up")
    if canary is None or stable is None or state.stage == Stage.STABLE:
        return None  # the steady state: assess() judges the stable revision
    tried = f"{canary.model_version} (revision {canary.revision})"
    serving = f"{stable.model_version} (revision {stable.revision})"
    if state.stage == Stage.ROLLED_BACK:
        why = (state.message or "no reason recorded").rstrip(".")
        return stuck(
            c.ROLLED_BACK,
            f"rolled back {tried}: {why}. The cluster serves the stable {serving}; "
            "change the spec to try a new version, or set it back to the stable one",
        )
    if state.stage == Stage.QUEUED:
        return converging(c.CANARY_QUEUED, f"{tried} is {state.message}; stable serves {serving}")
    if state.stage == Stage.PROMOTING:
        return converging(c.CANARY_IN_PROGRESS, f"promoting {tried}: the stable Deployment takes its pods")
    where = f"step {min(state.step + 1, total_steps)}/{total_steps}" if total_steps else "no steps"
    paused = f"; paused: {state.paused_reason}" if state.paused_reason else ""
    if state.check is not None and state.stage == Stage.CANARY:
        return converging(c.CHECK_RUNNING, f"canary {tried}: check {state.check.name} ({state.check.at}) is running "
                                           f"as Job {state.check.job}; the canary takes {state.weight}% of traffic "
                                           f"({where}); stable serves {serving}")
    if unschedulable and state.stage == Stage.CANARY:
        # Said within a pass, in the canary's words (issue 11): not "not ready" at the deadline.
        reason = c.INSUFFICIENT_CAPACITY if lacks_resources(unschedulable) else c.UNSCHEDULABLE
        return converging(reason, f"canary {tried} is waiting for room: {unschedulable}; it takes "
                                  f"{state.weight}% of traffic ({where}); stable serves {serving}")
    if loading and state.stage == Stage.CANARY:
        return converging(c.LOADING_MODEL, f"canary {tried} is loading: {loading}; it takes {state.weight}% of "
                                           f"traffic ({where}){paused}; stable serves {serving}")
    return converging(
        c.CANARY_IN_PROGRESS,
        f"canary {tried} takes {state.weight}% of traffic{rounding}{shadow} ({where}){paused}; stable serves {serving}"
    )


def _time(moment) -> str | None:
    return format_time(moment) if moment is not None else None
