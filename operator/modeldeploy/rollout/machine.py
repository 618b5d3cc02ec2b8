"""decide(): the rollout as a pure function of (spec, stored state, observed, now).

A flat list of situations, each handled by a small function with an early
return (Argo Rollouts' reconcile style), never one long walk through the whole
machine. In order:

    first revision         -> straight to stable
    Recreate               -> the new revision replaces stable at once
    spec back to stable    -> clear a rollback, or abort the canary in flight
    still the rolled-back revision -> stay rolled back, retry nothing
    scaled to 0 replicas   -> hold: nothing serves, nothing is promoted
    new revision           -> (abort the one in flight and) start a canary
    promoting              -> stable takes the canary's pods, then traffic returns
    canary                 -> abort? checks, analysis, promote? steps
"""

from dataclasses import dataclass, replace
from datetime import timedelta

from ..api.rollout import Step
from ..api.status import HistoryEntry, PausedBy
from ..conditions import (CONFIG_WAITING_REASONS, CRASH_LOOP_WAITING_REASON, IMAGE_PULL_WAITING_REASONS,
                          INSUFFICIENT_CAPACITY, PODS_CRASH_LOOPING,
                          PROGRESS_DEADLINE_EXCEEDED, RESTORING_STABLE, UNSCHEDULABLE)
from ..status.health import (converging, crash_looping, did_not_load, lacks_resources, overdue_loads, stuck,
                             within_own_deadline)
from ..status.observed import ObservedDeployment, ready_after_rollout, ready_canary_pods
from ..status.transitions import format_time
from ..traffic.provider import TrafficProvider
from ..traffic.registry import provider_for
from ..traffic.weights import ALL_STABLE, Weights
from .analysis import FAIL, INCONCLUSIVE, analysis_due, analysis_spec, evaluate, interval_seconds
from .admission import admit
from .blue_green import PREVIEW, SWITCH, blue_green, effective_steps, switch_index
from .capacity import (Budget, RolePods, backward, canary_pods_for, carriers, forward, most_share,
                       stable_goal)
from .annotations import ABORT, PROMOTE, Requests, read_requests
from .checks import canary_pods, canary_ready_replicas, last_progress, run_builtin_checks
from .decision import NORMAL, WARNING, Decision, Event
from .inputs import Inputs
from .report import build_report
from .sizing import base_replicas, canary_replicas
from .snapshot import spec_for_stable, take_snapshot
from .state import ACTIVE, CanaryRevision, RolloutState, Stage, StableRevision
from . import smoke

# While waiting on something that changes without an event we watch (a route's
# weights read back, an analysis answer), look again this soon.
POLL_SECONDS = 5.0
# How long a canary pod must have been Ready before a route sends it more
# weight: the EndpointSlice controller and the gateway's reload take seconds.
ENDPOINTS_SETTLE_SECONDS = 5.0
# pausedReason prefix that marks a pause set by analysis (cleared by a conclusive run).
INCONCLUSIVE_PAUSE = "analysis inconclusive"

PROMOTED, ROLLED_BACK, ABORTED = "Promoted", "RolledBack", "Aborted"
CANARY_STARTED = "CanaryStarted"
# A canary held while the model is scaled to 0 (the user's choice): said in
# the status, as an open pause is (issue 9, invariant 6).
SCALED_TO_ZERO = "held: the model is scaled to 0 replicas; the canary walks its steps again when scaled up"


@dataclass(frozen=True)
class _Context:
    inputs: Inputs
    provider: TrafficProvider
    steps: tuple[Step, ...]
    base: int  # replicas a weight is a share of
    requests: Requests  # promote/abort annotations: all consumed, some granted
    # spec.rollout.capacity.mode Replace: the pod budget both roles share
    # (rollout/capacity.py); None in mode Surge.
    budget: Budget | None = None


def decide(inputs: Inputs) -> Decision:
    budget = _budget(inputs.spec, inputs.observed)
    ctx = _Context(
        inputs=inputs,
        provider=provider_for(inputs.spec),
        steps=effective_steps(inputs.spec.rollout),
        base=budget.replicas if budget is not None else base_replicas(
            inputs.spec, inputs.observed.stable, inputs.state.stable_floor if inputs.state.stage in ACTIVE else None),
        requests=read_requests(inputs.annotations, _in_flight(inputs.state), done=_carried_out(inputs.state)),
        budget=budget,
    )
    return (
        _first_revision(ctx)
        or _back_to_stable(ctx)
        # Before _recreate: switching the strategy to Recreate is no way
        # round a rollback (issue 9, invariant 2).
        or _still_rolled_back(ctx)
        or _recreate(ctx)
        or _scaled_to_zero(ctx)
        or _new_revision(ctx)
        or _promoting(ctx, ctx.inputs.state)
        or _canary(ctx, ctx.inputs.state)
    )


# -- situations --------------------------------------------------------------


def _first_revision(ctx: _Context) -> Decision | None:
    if ctx.inputs.state.stable is not None:
        return None
    return _steady(ctx, RolloutState(stable=_desired_as_stable(ctx)))


def _recreate(ctx: _Context) -> Decision | None:
    """Recreate (asked for: downtime accepted): the new revision becomes
    stable at once, aborting any canary in flight."""
    inputs, state = ctx.inputs, ctx.inputs.state
    if inputs.revision == state.stable.revision or inputs.spec.rollout.strategy != "Recreate":
        return None
    if ABORT in ctx.requests and state.stage in ACTIVE and state.canary is not None \
            and state.canary.revision == inputs.revision:
        return None  # the user aborted this very revision: the abort comes first, and bars it
    history, events = _aborted(ctx, state, "the new revision replaces stable directly")
    return _steady(ctx, RolloutState(stable=_desired_as_stable(ctx), decisions=state.decisions), events, history)


def _back_to_stable(ctx: _Context) -> Decision | None:
    """The spec names the stable revision: a rollback is cleared, a canary in
    flight is aborted, and stable keeps serving without a new canary."""
    inputs, state = ctx.inputs, ctx.inputs.state
    if inputs.revision != state.stable.revision:
        return None
    history, events = _aborted(ctx, state, "the spec returned to the stable revision")
    return _steady(ctx, RolloutState(stable=_desired_as_stable(ctx), decisions=state.decisions), events, history)


def _still_rolled_back(ctx: _Context) -> Decision | None:
    """The spec still names the revision that failed: keep serving stable and
    retry nothing until the spec changes."""
    state = ctx.inputs.state
    if state.stage != Stage.ROLLED_BACK or state.canary is None or state.canary.revision != ctx.inputs.revision:
        return None
    return _rolled_back_decision(ctx, state)


def _scaled_to_zero(ctx: _Context) -> Decision | None:
    """replicas: 0 while the spec names a revision other than stable's.

    Nothing serves, but nothing is promoted either (issue 9, defect 2): the
    stable snapshot stays, so scaling up again does not serve an untried or a
    rolled-back revision. A canary of this revision in flight is held at
    step 0 with no weight and no pods, and walks its steps again when scaled
    up; one of another revision is aborted (the new one starts when scaled up).
    """
    inputs, state = ctx.inputs, ctx.inputs.state
    if ctx.base > 0:
        return None
    if PROMOTE in ctx.requests:  # nothing runs to prove the revision on: refused, said so, not lost silently
        requests = ctx.requests
        ctx = replace(ctx, requests=replace(
            requests, granted=tuple(k for k in requests.granted if k != PROMOTE),
            refused=(*requests.refused, (PROMOTE, "the model is scaled to 0 replicas: scale it up, then promote"))))
    if state.stage in ACTIVE and state.canary is not None and state.canary.revision == inputs.revision:
        if ABORT in ctx.requests:
            return _rollback(ctx, state, f"aborted by the {ABORT} annotation")
        held = replace(state, stage=Stage.CANARY, step=0, weight=0, mirror=0, step_started_at=inputs.now,
                       paused_reason=SCALED_TO_ZERO, paused_by=None, not_ready_since=None, last_analysis_at=None)
        return _decision(ctx, held, stable_spec=_stable_spec(ctx, held), canary=None, weights=ALL_STABLE,
                         requeue=None)
    history, events = _aborted(ctx, state, "scaled to 0 replicas")
    # The new revision waits, said in the status (WaitingForScaleUp), with no
    # deadline: a model scaled to zero by KEDA may wait hours for a request.
    idle = RolloutState(stable=state.stable, decisions=state.decisions, message=_waits_at_zero(ctx))
    return _decision(ctx, idle, stable_spec=_stable_spec(ctx, idle), canary=None, weights=ALL_STABLE,
                     requeue=None, events=events, history=history)


def _waits_at_zero(ctx: _Context) -> str:
    """Why a new revision does not start its canary at 0 replicas: there is
    no stable pod to compare it with nor traffic to try it on, and serving
    it untried on the next scale-up would skip the rollout (issue 14)."""
    spec, inputs = ctx.inputs.spec, ctx.inputs
    if spec.autoscaling is not None:
        by = "its autoscaler (KEDA, minReplicas 0)" if spec.autoscaling.keda_engine else "hand (0 replicas)"
        when = "when the autoscaler scales the model up (a request or a trigger)"
    else:
        by, when = "spec.replicas 0", "when spec.replicas is raised"
    return (f"{spec.model.version} (revision {inputs.revision}) waits: the model is scaled to zero by {by}; "
            f"its canary starts {when}")


def _new_revision(ctx: _Context) -> Decision | None:
    """A revision that is neither stable nor the one in flight: a fresh canary
    from stable, analysis reset (a running one is aborted first)."""
    inputs, state = ctx.inputs, ctx.inputs.state
    if state.stage in ACTIVE and state.canary is not None and state.canary.revision == inputs.revision:
        return None
    queued = _queued(ctx, state)
    if queued is not None:
        return queued
    restoring = _restoring_first(ctx, state)
    if restoring is not None:
        return restoring
    history, events = _aborted(ctx, state, f"superseded by revision {inputs.revision}")
    spec = inputs.spec
    fresh = RolloutState(
        stage=Stage.CANARY,
        stable=state.stable,
        canary=CanaryRevision(inputs.revision, spec.model.version, spec.model.uri, spec.model.resolved),
        step=0,
        step_started_at=inputs.now,
        canary_started_at=inputs.now,  # smoke checks: this canary's Job names derive from it
        # Under autoscaling, stable is held at its current count until the
        # canary ends (issue 9, defect 4): see _decision.
        # (Not when the HPA scales both roles together: capacity mode Replace.)
        stable_floor=ctx.base if spec.autoscaling is not None and ctx.budget is None else None,
    )
    started = Event(
        NORMAL,
        CANARY_STARTED,
        f"trying out {spec.model.version} (revision {inputs.revision}) as a canary; "
        f"stable {state.stable.model_version} (revision {state.stable.revision}) keeps serving",
    )
    # A bare "true" request seen in this pass was aimed at what came before.
    ctx = replace(ctx, requests=read_requests(inputs.annotations, inputs.revision, new_revision=True))
    decision = _canary(ctx, fresh)
    if not ctx.provider.weighted and decision.state.stage in ACTIVE and decision.canary_replicas:
        # With `replicas` a ready canary pod is client traffic. Its pods
        # come with the next pass, once the status names the canary: if this
        # pass's status write is lost, no serving canary is left that only
        # the lost status explains (a spec broken next would hold it serving
        # while the recorded rollout says none is in flight; issue 9,
        # invariant 3, found by the property test). Its promotion too, when
        # no step holds it (`steps: []`): that re-templates the canary
        # Deployment at the size it serves with (found at 3,000 examples). A
        # promote request waits for that pass, unconsumed.
        held = decision.state if decision.state.stage == Stage.CANARY else fresh
        requests = ctx.requests
        if PROMOTE in requests.granted:
            ctx = replace(ctx, requests=replace(requests, present=tuple(k for k in requests.present if k != PROMOTE),
                                                granted=tuple(k for k in requests.granted if k != PROMOTE)))
        decision = _active_decision(ctx, held, canary=0, requeue=POLL_SECONDS)
    return _prepend(decision, (*events, started), history)


def _restoring_first(ctx: _Context, state: RolloutState) -> Decision | None:
    """Mode Replace: a new revision while pods of another canary still serve
    (a canary in flight, or one being walked back after a rollback or a
    promotion). That canary is walked back first, its pods kept as they are
    (never re-templated in place: that would add pods beyond the budget and
    take its ready ones away at once); the new canary starts once stable has
    all its pods back."""
    inputs = ctx.inputs
    if ctx.budget is None:
        return None
    _, canary = _role_pods(ctx)
    if canary.pods == 0 and canary.replicas == 0:
        return None
    history, events = _aborted(ctx, state, f"superseded by revision {inputs.revision}")
    spec = inputs.spec
    line = (f"{spec.model.version} (revision {inputs.revision}) waits: stable is taking back its "
            f"{ctx.budget.replicas} pods from the previous canary first (capacity mode Replace)")
    held = state if state.stage == Stage.ROLLED_BACK else RolloutState(stable=state.stable, decisions=state.decisions)
    held = replace(held, message=line) if held.stage == Stage.ROLLED_BACK else held
    decision = _decision(ctx, held, stable_spec=_stable_spec(ctx, held), canary=None, weights=ALL_STABLE,
                         requeue=POLL_SECONDS)
    return _prepend(decision, events, history)


def _queued(ctx: _Context, state: RolloutState) -> Decision | None:
    """--max-concurrent-canaries: no slot for this revision's canary yet.
    Stable serves as it does; the revision waits in line, its place said in
    the status, and starts as soon as a slot is its (issue 11)."""
    inputs = ctx.inputs
    if inputs.slots is None:
        return None
    waiting = state.stage == Stage.QUEUED and state.canary is not None and state.canary.revision == inputs.revision
    since = (state.step_started_at if waiting else None) or inputs.now
    in_flight = state.stage in ACTIVE
    admission = admit(inputs.slots, f"{inputs.namespace}/{inputs.name}", since)
    if admission.admitted or in_flight:
        return None
    spec = inputs.spec
    line = (f"waiting for a canary slot: {admission.position} of {admission.waiting} in line, "
            f"{inputs.slots.limit} canaries at most at once (--max-concurrent-canaries)")
    held = RolloutState(stage=Stage.QUEUED, stable=state.stable,
                        canary=CanaryRevision(inputs.revision, spec.model.version, spec.model.uri, spec.model.resolved),
                        step_started_at=since, message=line, decisions=state.decisions)
    events = () if waiting else (Event(NORMAL, "CanaryQueued", f"{spec.model.version} (revision {inputs.revision}) "
                                       f"{line}; stable {state.stable.model_version} keeps serving"),)
    decision = _decision(ctx, held, stable_spec=_stable_spec(ctx, held), canary=None, weights=ALL_STABLE,
                         requeue=POLL_SECONDS)
    return _prepend(decision, events, ())


def _promoting(ctx: _Context, state: RolloutState) -> Decision | None:
    """Stable takes the canary's pods; traffic returns to stable only once the
    new stable is fully ready, then the canary goes. Never a moment without
    ready capacity."""
    if state.stage != Stage.PROMOTING:
        return None
    inputs = ctx.inputs
    if ABORT in ctx.requests:
        return _rollback(ctx, state, f"aborted by the {ABORT} annotation")
    if _checks_added_before_promotion_moved(ctx, state):
        # Back to the promotion gate: the checks run there, and the
        # promotion starts again by itself once they pass.
        return _canary(ctx, replace(state, stage=Stage.CANARY, step=len(ctx.steps), step_started_at=inputs.now))
    problem = _promotion_problem(ctx, state)
    if problem is not None:
        return _rollback(ctx, state, problem)
    if ctx.budget is not None:
        return _promoting_in_place(ctx, state)
    # The canary keeps (at least) the size it serves with until the route is
    # read back at 100/0: promotion never takes serving capacity away.
    current = inputs.observed.canary.replicas if inputs.observed.canary is not None else 0
    still_serving = max(_wanted_canary_pods(ctx, state), current)
    if not _settled(inputs.observed.stable, inputs.revision, inputs.spec.fixed_replicas):
        return _active_decision(ctx, state, stable_spec=inputs.spec, canary=still_serving, requeue=POLL_SECONDS)
    state = replace(state, weight=0)
    if ctx.provider.weighted and inputs.weights != ALL_STABLE:
        return _active_decision(ctx, state, stable_spec=inputs.spec, canary=still_serving, requeue=POLL_SECONDS)
    return _promoted(ctx, state)


def _checks_added_before_promotion_moved(ctx: _Context, state: RolloutState) -> bool:
    """Mode Replace: a PreRollout or PrePromotion check the spec gained while
    promoting, as long as the canary has had no client traffic (there the
    canary takes all the traffic first, step by step). It runs before
    promoting, as it would have had it been in the spec when the promotion
    began (a PreRollout check added once such a promotion had started let
    the canary take client traffic before it ran; found by the property
    test, invariant 12). In mode Surge the pass that starts a promotion
    re-templates stable: any check added later comes after it."""
    if ctx.budget is None or not smoke.outstanding(ctx.inputs.spec, state, len(ctx.steps)):
        return False
    return not (state.weight or state.mirror or _carried(ctx))


def _promoting_in_place(ctx: _Context, state: RolloutState) -> Decision:
    """Mode Replace: there is no room for a second full set of pods, so the
    canary takes all the traffic and all the pods first (stable shrinking as
    the canary's ready pods cover the floor); then the stable Deployment,
    empty, takes the new revision, and the steady state hands the pods and
    the traffic back to it the same careful way (_fit, backward)."""
    inputs, budget = ctx.inputs, ctx.budget
    stable, canary = _role_pods(ctx)
    observed = inputs.observed.stable
    if observed is not None and state.canary is not None and observed.revision == state.canary.revision:
        # Stable already took the revision (a promotion begun in mode Surge):
        # what is left is handing the pods back, from the steady state.
        return _promoted(ctx, state)
    if ctx.provider.weighted:
        state = replace(state, weight=max(state.weight, _most_canary_share(ctx, state)))
    emptied = stable.replicas == 0 and stable.pods == 0
    carried = _carried(ctx)
    if emptied and carried == 100 and canary.ready >= carriers(budget.floor, 100):
        return _promoted(ctx, state)
    return _active_decision(ctx, state, canary=budget.replicas, requeue=POLL_SECONDS)


def _promotion_problem(ctx: _Context, state: RolloutState) -> str | None:
    """Promotion is checked like the canary was (issue 9, defect 7): a pod of
    the promoted revision crash-looping in either role, or the stable
    Deployment not taking the revision within progressDeadlineSeconds of the
    promotion's start, rolls back instead of promoting forever."""
    inputs = ctx.inputs
    revision = state.canary.revision if state.canary else inputs.revision
    for pod in inputs.observed.pods:
        if pod.revision != revision:
            continue
        for waiting in pod.waiting:
            if waiting.reason == CRASH_LOOP_WAITING_REASON:
                return (f"while promoting, {pod.role} pod {pod.name} container {waiting.container} is "
                        f"crash-looping ({pod.restart_count} restarts)")
    promoted = [pod for pod in inputs.observed.pods if pod.revision == revision]
    overdue = overdue_loads(promoted, inputs.now)
    if overdue:
        return f"while promoting, {overdue[0].role} {did_not_load(overdue[0])}"
    deadline = inputs.spec.rollout.progress_deadline_seconds
    started = state.step_started_at or inputs.now
    if ctx.budget is not None:
        # Capacity mode Replace moves a pod at a time: the deadline counts
        # from the last progress, and the canary's pods count as promoted.
        started = last_progress(promoted, started)
        if sum(1 for pod in promoted if pod.ready) >= ctx.budget.floor:
            return None
    # The deadline counts from a pod's scheduling, and a loading pod has its
    # loadTimeout (issue 11): stable's new pods load the model as the canary's did.
    if inputs.now - started > timedelta(seconds=deadline) and not within_own_deadline(promoted, inputs.now, deadline,
                                                                                       started):
        stable = inputs.observed.stable
        ready = stable.ready_replicas if stable is not None and stable.revision == revision else 0
        if any(pod.role == "stable" for pod in promoted):
            # Counted pod by pod: the Deployment's readyReplicas also counts
            # the replaced revision's pods while it rolls.
            ready = sum(1 for pod in promoted if pod.role == "stable" and pod.ready)
        wanted = inputs.spec.fixed_replicas if inputs.spec.fixed_replicas is not None else ctx.base
        if ready >= wanted:
            return None  # stable has taken the revision: what is left is the route and the canary's removal
        return (f"promotion not complete within {deadline}s (spec.rollout.progressDeadlineSeconds): "
                f"{ready}/{wanted} stable pods of revision {revision} ready")
    return None


def _canary(ctx: _Context, state: RolloutState) -> Decision:
    inputs = ctx.inputs
    if ABORT in ctx.requests:
        return _rollback(ctx, state, f"aborted by the {ABORT} annotation")

    checked = run_builtin_checks(inputs, state, _wanted_canary_pods(ctx, state))
    if checked.failure is not None:
        return _rollback(ctx, checked.state, checked.failure)
    state = checked.state

    awaiting_analysis = analysis_due(inputs, state) and inputs.analysis is None
    if analysis_due(inputs, state) and inputs.analysis is not None:
        state, failure = _analyse(ctx, state)
        if failure is not None:
            return _rollback(ctx, state, failure)

    # -- smoke checks (rollout/smoke.py): the running one judged, the gate at this step run --
    gate = _smoke_gate(ctx, state)
    if gate.failure is not None:
        return _prepend(_rollback(ctx, gate.state, gate.failure), gate.events, ())
    state = gate.state
    blue_green_approval = blue_green(inputs.spec) and state.weight < SWITCH
    if PROMOTE in ctx.requests and (blue_green_approval or state.check is not None
                                    or smoke.outstanding(inputs.spec, state, len(ctx.steps))):
        # Promote skips steps, never a PreRollout or PrePromotion check (they
        # run now), and waits for a check already started to finish.
        # Blue-green's promote is its approval: the switch, all at once (once
        # the preview is ready and its PrePromotion checks passed), not a
        # rolling update of stable.
        target = switch_index(ctx.steps) if blue_green_approval else len(ctx.steps)
        state = replace(state, step=max(state.step, target), step_started_at=inputs.now, paused_reason=None,
                        paused_by=None)
        first = gate.events
        gate = _smoke_gate(ctx, state)
        gate = replace(gate, events=(*first, *gate.events))
        if gate.failure is not None:
            return _prepend(_rollback(ctx, gate.state, gate.failure), gate.events, ())
        state = gate.state
    elif PROMOTE in ctx.requests:
        return _prepend(_start_promotion(ctx, state), gate.events, ())
    if not awaiting_analysis and gate.open:  # no step passes on an analysis that has not run
        state = _advance_steps(ctx, state)
    if gate.open and state.step >= len(ctx.steps) and not smoke.outstanding(inputs.spec, state, state.step) \
            and canary_ready_replicas(inputs, state) >= _wanted_canary_pods(ctx, state):
        return _prepend(_start_promotion(ctx, state), gate.events, ())
    requeue = _canary_requeue(ctx, state, awaiting_analysis)
    waiting = smoke.requeue(inputs, state)
    return _prepend(_active_decision(ctx, state, requeue=requeue if waiting is None else min(requeue, waiting)),
                    gate.events, ())


def _smoke_gate(ctx: _Context, state: RolloutState) -> smoke.Gate:
    """The smoke checks at the step in progress (rollout/smoke.py): a check
    starts once the canary has a ready pod its Service knows."""
    inputs = ctx.inputs
    ready = (_settled_canary_pods(ctx, state) > 0 if ctx.provider.weighted
             else canary_ready_replicas(inputs, state) >= _wanted_canary_pods(ctx, state))
    return smoke.run_gate(inputs, state, min(state.step, len(ctx.steps)), pod_ready=ready)


# -- steps ----------------------------------------------------------------------


def _advance_steps(ctx: _Context, state: RolloutState) -> RolloutState:
    """Pass every step that is complete now; stop at the first that is not."""
    while state.step < len(ctx.steps) and not _paused_by_analysis(state):
        if smoke.outstanding(ctx.inputs.spec, state, state.step):
            return state  # a smoke check gates this step: the next pass runs it
        step = ctx.steps[state.step]
        if step is PREVIEW:
            state, done = _preview_ready(ctx, state)
        elif step.set_weight is not None:
            state, done = _set_weight(ctx, state, step.set_weight)
        elif step.set_mirror is not None:
            state, done = _set_mirror(ctx, state, step.set_mirror.percent)
        else:
            state, done = _pause(ctx, state, step)
        if not done:
            return state
        state = replace(state, step=state.step + 1, step_started_at=ctx.inputs.now, paused_reason=None,
                        paused_by=None)
    return state


def _set_weight(ctx: _Context, state: RolloutState, weight: int) -> tuple[RolloutState, bool]:
    """Done once the weight is set and read back. A weight is never raised
    above what ready canary pods can take: until they are, the step waits.
    In capacity mode Replace a route climbs toward the step's weight as far
    as the canary's ready pods carry it: each share it takes lets stable
    give up a pod, which makes room for the canary's next one."""
    if weight > state.weight and ctx.budget is not None and ctx.provider.weighted:
        reachable = min(weight, _most_canary_share(ctx, state))
        if reachable > state.weight:
            if state.last_analysis_at is None:
                state = replace(state, last_analysis_at=ctx.inputs.now)
            state = replace(state, weight=reachable)
        return state, state.weight == weight and ctx.inputs.weights == Weights.to_canary(weight)
    if weight > state.weight and not _canary_ready_for(ctx, state, weight):
        return state, False
    if state.last_analysis_at is None and weight > 0:
        state = replace(state, last_analysis_at=ctx.inputs.now)  # analysis clock starts with traffic
    state = replace(state, weight=weight)
    if not ctx.provider.weighted:
        return state, True  # the split is the ready-pod ratio: nothing to read back
    return state, ctx.inputs.weights == Weights.to_canary(weight)


def _preview_ready(ctx: _Context, state: RolloutState) -> tuple[RolloutState, bool]:
    """BlueGreen's first step: done once the new revision runs at full size,
    every pod ready (and known to the gateway). The analysis clock starts
    then: the preview is judged before it takes any client traffic."""
    if not _canary_ready_for(ctx, state, SWITCH):
        return state, False
    if state.last_analysis_at is None:
        state = replace(state, last_analysis_at=ctx.inputs.now)
    return state, True


def _set_mirror(ctx: _Context, state: RolloutState, percent: int) -> tuple[RolloutState, bool]:
    """Done once the route copies the requests (read back). Copies start
    only once ready canary pods can take them (in capacity mode Replace, one:
    stable keeps every pod it serves with); the analysis clock starts with
    them, so a canary is judged on shadow requests before any user sees it."""
    if percent > state.mirror and not _canary_ready_for_mirror(ctx, state, percent):
        return state, False
    if state.last_analysis_at is None and percent > 0:
        state = replace(state, last_analysis_at=ctx.inputs.now)
    state = replace(state, mirror=percent)
    return state, ctx.inputs.mirror == _mirror_written(ctx, state)


def _canary_ready_for_mirror(ctx: _Context, state: RolloutState, percent: int) -> bool:
    if ctx.budget is not None:
        return _settled_canary_pods(ctx, state) > 0
    return _canary_ready_for(ctx, state, percent)


def _mirror_written(ctx: _Context, state: RolloutState) -> int:
    """The share of requests the route copies to the canary: the last
    setMirror's while a canary is in flight. A route read back mirroring
    everything after this percent was written (recorded in the status)
    cannot hold a percentage (a Gateway API before RequestMirror.percent:
    the API server drops the field): then the whole stream, written so, and
    the status says so."""
    if state.stage != Stage.CANARY or state.mirror == 0 or not ctx.provider.weighted:
        return 0
    if ctx.inputs.mirror == 100 and ctx.inputs.state.mirror == state.mirror:
        return 100
    return state.mirror


def _route_mirror(ctx: _Context, state: RolloutState) -> int:
    """The copies the route is written with: the rollout's, but a route that
    copies less (the canary re-created, its pods not ready yet; a route
    re-created or edited down) copies more only once the canary's ready pods
    can take them, as a weight is raised back (_route_weight; invariant 3)."""
    mirror, carried = _mirror_written(ctx, state), ctx.inputs.mirror or 0
    if mirror <= carried:
        return mirror
    return mirror if _canary_ready_for_mirror(ctx, state, mirror) else carried


def _client_role(ctx: _Context, state: RolloutState, canary: int | None) -> str | None:
    """BlueGreen with the replicas provider: the client Service selects one
    role's pods, switched all at once (stable until the switch; the canary
    from the switch until the promotion ends). None: both roles, the split
    following the ready pods (the replicas provider's canary)."""
    if ctx.provider.weighted or not blue_green(ctx.inputs.spec):
        return None
    switched = state.stage in ACTIVE and state.weight >= SWITCH and bool(canary)
    return "canary" if switched else "stable"


def _headers_to_canary(ctx: _Context, state: RolloutState, canary: int | None) -> bool | None:
    """Requests with spec.traffic.canaryHeaders go to the canary while it is
    in flight and has a pod ready long enough for the gateway to know it
    (never to a backend without one); else to stable. None: no headers."""
    if not ctx.inputs.spec.traffic.canary_headers or not ctx.provider.weighted:
        return None
    if state.stage != Stage.CANARY or not canary:
        return False
    if not smoke.pre_rollout_passed(ctx.inputs.spec, state):
        return False  # no client request reaches a canary before its PreRollout checks passed
    return _settled_canary_pods(ctx, state) > 0


def _pause(ctx: _Context, state: RolloutState, step: Step) -> tuple[RolloutState, bool]:
    inputs = ctx.inputs
    if step.pause.duration is not None:
        elapsed = inputs.now - (state.step_started_at or inputs.now)
        return state, elapsed >= timedelta(seconds=step.pause.seconds)
    approved = inputs.spec.rollout.approved_version
    if approved is not None and state.canary is not None and approved == state.canary.model_version:
        return state, True
    version = state.canary.model_version if state.canary else "the canary's version"
    reason = f"waiting for approval: set spec.rollout.approvedVersion to {version} or annotate {PROMOTE}"
    return replace(state, paused_reason=reason, paused_by=PausedBy.APPROVAL), False


# -- analysis -------------------------------------------------------------------


def _analyse(ctx: _Context, state: RolloutState) -> tuple[RolloutState, str | None]:
    """Judge one round of metric results: count failures and rounds with query
    errors in a row, apply onInconclusive."""
    inputs = ctx.inputs
    spec = analysis_spec(inputs)
    verdicts = evaluate(spec, inputs.analysis)
    failed = [v for v in verdicts if v.verdict == FAIL]
    unsure = [v for v in verdicts if v.verdict == INCONCLUSIVE]
    errored = [v for v in verdicts if v.error]
    errors = state.consecutive_errors + 1 if errored else 0  # a round without errors resets the count
    state = replace(state, last_analysis_at=inputs.now, consecutive_errors=errors)
    failure = None
    # A pause the analysis set is lifted by this round unless it pauses again.
    paused, paused_by = (None, None) if _paused_by_analysis(state) else (state.paused_reason, state.paused_by)
    if failed:
        count = state.failed_checks + 1
        over = count > spec.failure_limit
        action = "Rollback" if over else f"Failed check {count} of {spec.failure_limit} tolerated"
        state = replace(state, failed_checks=count)
        if over:
            failure = f"{failed[0].why} (failed checks {count} > failureLimit {spec.failure_limit})"
    elif unsure:
        action = spec.on_inconclusive
        why = (errored or unsure)[0].why
        if errored:
            why += f" (analysis errors {errors} in a row; consecutiveErrorLimit {spec.consecutive_error_limit})"
        if action == "Rollback":
            failure = f"{INCONCLUSIVE_PAUSE}: {why} (onInconclusive: Rollback)"
        elif action == "Pause":
            # A pause held for a person: the status says what releases it.
            paused = (f"{INCONCLUSIVE_PAUSE}: {why}; waiting for a decision: annotate {PROMOTE} or {ABORT} "
                      "(a conclusive round resumes it by itself)")
            paused_by = PausedBy.ANALYSIS
    else:
        action = "Continue"
    if failure is None and errors > spec.consecutive_error_limit:
        action = "Rollback"
        limit = spec.consecutive_error_limit
        failure = f"{errored[0].why} (analysis errors {errors} in a row > consecutiveErrorLimit {limit})"
    records = [v.record(inputs.now, action) for v in verdicts]
    return replace(state, paused_reason=paused, paused_by=paused_by, decisions=state.with_decisions(*records)), failure


def _paused_by_analysis(state: RolloutState) -> bool:
    return state.paused_by == PausedBy.ANALYSIS


# -- outcomes -------------------------------------------------------------------


def _start_promotion(ctx: _Context, state: RolloutState) -> Decision:
    promoting = replace(state, stage=Stage.PROMOTING, step=len(ctx.steps), mirror=0, paused_reason=None, paused_by=None,
                        step_started_at=ctx.inputs.now, not_ready_since=None)
    event = Event(NORMAL, "Promoting", f"promoting {_describe(state.canary)}: the stable Deployment takes its pods")
    return _prepend(_promoting(ctx, promoting), (event,), ())


def _promoted(ctx: _Context, state: RolloutState) -> Decision:
    inputs = ctx.inputs
    done = RolloutState(stable=_desired_as_stable(ctx), canary=state.canary, decisions=state.decisions)
    event = Event(NORMAL, PROMOTED, f"promoted {_describe(state.canary)}: it is the stable revision now")
    return _steady(ctx, done, (event,), (_history(inputs, state.canary, PROMOTED),))


def _rollback(ctx: _Context, state: RolloutState, why: str) -> Decision:
    """Traffic to stable at once, the canary removed, stable untouched."""
    rolled = replace(state, stage=Stage.ROLLED_BACK, weight=0, mirror=0, paused_reason=None, paused_by=None,
                     not_ready_since=None,
                     message=why)
    event = Event(
        WARNING,
        ROLLED_BACK,
        f"rolled back {_describe(state.canary)}: {why}; serving stable "
        f"{state.stable.model_version} (revision {state.stable.revision})",
    )
    return _prepend(_rolled_back_decision(ctx, rolled), (event,), (_history(ctx.inputs, state.canary, ROLLED_BACK),))


def _aborted(ctx: _Context, state: RolloutState, why: str) -> tuple[tuple[HistoryEntry, ...], tuple[Event, ...]]:
    """History and Event for a canary in flight that is dropped (nothing if none is)."""
    if state.stage not in ACTIVE or state.canary is None:
        return (), ()
    event = Event(NORMAL, ABORTED, f"aborted canary {_describe(state.canary)}: {why}")
    return (_history(ctx.inputs, state.canary, ABORTED),), (event,)


# -- decisions ------------------------------------------------------------------


def _steady(ctx: _Context, state: RolloutState, events=(), history=()) -> Decision:
    """One revision serves: stable from the spec (its revision is the spec's)."""
    return _decision(ctx, state, stable_spec=ctx.inputs.spec, canary=None, weights=ALL_STABLE,
                     events=events, history=history, requeue=None)


def _rolled_back_decision(ctx: _Context, state: RolloutState) -> Decision:
    return _decision(ctx, state, stable_spec=_stable_spec(ctx, state), canary=None, weights=ALL_STABLE, requeue=None)


def _active_decision(
    ctx: _Context, state: RolloutState, *, stable_spec=None, canary: int | None = None, requeue: float | None
) -> Decision:
    return _decision(
        ctx,
        state,
        stable_spec=stable_spec or _stable_spec(ctx, state),
        canary=canary if canary is not None else _wanted_canary_pods(ctx, state),
        weights=Weights.to_canary(_route_weight(ctx, state)),
        requeue=requeue,
    )


def _route_weight(ctx: _Context, state: RolloutState) -> int:
    """The canary weight the route is written with: the rollout's, but a route
    that carries less (re-created after a traffic provider switch, or edited
    down by hand) is raised back only once the canary's ready pods can carry
    it, as a step's setWeight is (issue 9, invariant 3)."""
    if not ctx.provider.weighted:
        return state.weight
    carried = ctx.inputs.weights.canary if ctx.inputs.weights is not None else 0
    if state.weight <= carried:
        return state.weight
    # Counted as the report and a held status count (ready_canary_pods): pod
    # by pod, or with no canary pod cached at all (right after an operator
    # restart the caches fill in any order) the canary Deployment's
    # readyReplicas, so live traffic does not flap to 0 meanwhile, while a
    # canary whose Deployment is gone carries nothing. Promotion and the
    # built-in checks count strictly by pod: moving forward waits for the cache.
    revision = state.canary.revision if state.canary else None
    ready = ready_canary_pods(ctx.inputs.observed.pods, revision, ctx.inputs.observed.canary)
    return state.weight if ready >= _pods_to_carry(ctx, state.weight) else carried


def _most_canary_share(ctx: _Context, state: RolloutState) -> int:
    """Capacity mode Replace: the largest weight the canary's settled ready
    pods carry (carriers() <= ready)."""
    return most_share(ctx.budget.floor, _settled_canary_pods(ctx, state))


def _pods_to_carry(ctx: _Context, weight: int) -> int:
    """Ready canary pods a route's weight needs: the weight's share of the
    replicas, or in capacity mode Replace of the least ready capacity
    accepted (replicas - maxUnavailable)."""
    if ctx.budget is not None:
        return carriers(ctx.budget.floor, weight)
    return canary_replicas(ctx.base, weight)


@dataclass(frozen=True)
class _Sizes:
    """What a pass writes for the two roles' sizes and the route: the wanted
    ones in mode Surge, in mode Replace what fits the budget this pass."""

    stable: int | None  # None: the HPA's count
    canary: int | None  # None: the canary Deployment is removed
    weights: Weights
    moving: bool = False  # mode Replace: still on the way to the wanted sizes
    canary_from_live: bool = False  # the canary Deployment rescaled as it runs, not re-templated
    stable_from_live: bool = False  # the same for stable
    stable_ready: int | None = None  # mode Replace: stable's ready pods that stay, as its Service routes


def _sizes(ctx: _Context, state: RolloutState, stable_spec, canary: int | None, weights: Weights) -> _Sizes:
    if ctx.budget is None:
        return _Sizes(stable=ctx.inputs.spec.fixed_replicas, canary=canary, weights=weights)
    rendered = ctx.inputs.revision if stable_spec is ctx.inputs.spec else (
        state.stable.revision if state.stable is not None else None)
    live = ctx.inputs.observed.stable
    stable_role, canary_role = _role_pods(ctx)
    # Stable with pods takes a new template only once no canary pod holds
    # a place: its own rolling update would take ready pods away (or add
    # its surge) while the canary's still count toward the budget and the
    # floor. (An emptied stable, as in a promotion, takes it at once.)
    stable_frozen = (live is not None and rendered is not None and live.revision != rendered
                     and (stable_role.replicas > 0 or stable_role.pods > 0)
                     and ((canary or 0) > 0 or canary_role.pods > 0))
    stable_replicas, canary, weights, moving, frozen = _fit(ctx, canary, weights, None if stable_frozen else rendered)
    return _Sizes(stable=stable_replicas, canary=canary, weights=weights, moving=moving, canary_from_live=frozen,
                  stable_from_live=stable_frozen,
                  stable_ready=ready_after_rollout(ctx.inputs.observed.pods, "stable", live, replicas=stable_replicas,
                                                   template=live.revision if stable_frozen else rendered,
                                                   # the strategy this pass writes (a rescaled one keeps its own)
                                                   unavailable=None if stable_frozen else ctx.budget.unavailable))


def _decision(ctx, state, *, stable_spec, canary, weights, requeue, events=(), history=()) -> Decision:
    sizes = _sizes(ctx, state, stable_spec, canary, weights)
    canary, weights = sizes.canary, sizes.weights
    if sizes.moving:
        requeue = POLL_SECONDS if requeue is None else min(requeue, POLL_SECONDS)
    mirror = _route_mirror(ctx, state) if canary else 0
    headers = _headers_to_canary(ctx, state, canary)
    client_role = _client_role(ctx, state, canary)
    report = build_report(ctx.inputs, state, provider=ctx.provider, weights=weights, base=ctx.base,
                          canary_pods=canary, total_steps=len(ctx.steps), history=tuple(history),
                          stable_pods=sizes.stable, budget=ctx.budget, stable_ready=sizes.stable_ready,
                          mirror=mirror, headers_to_canary=headers, client_role=client_role)
    if sizes.moving and report.health is None:
        # The steady state, but the canary still holds pods: not Ready yet.
        report = replace(report, health=_restoring_health(ctx, sizes.stable, canary, weights))
    # The current spec renders with the runtime its revision was computed
    # with; the stable snapshot with the runtime stable was rolled out with.
    runtime = ctx.inputs.runtime if stable_spec is ctx.inputs.spec else (state.stable.runtime if state.stable else None)
    return Decision(
        stable_spec=stable_spec,
        stable_runtime=runtime,
        stable_replicas=sizes.stable,
        canary_template_from_live=sizes.canary_from_live,
        stable_template_from_live=sizes.stable_from_live,
        autoscaler_floor=state.stable_floor if state.stage in ACTIVE else None,
        canary_replicas=canary,
        weights=weights,
        mirror=mirror,
        headers_to_canary=bool(headers),
        client_role=client_role,
        remove_annotations=ctx.requests.present,
        events=(*events, *_refusals(ctx.requests)),
        report=report,
        state=state,
        requeue_after=requeue,
    )


def _restoring_health(ctx: _Context, stable_replicas: int, canary: int | None, weights: Weights):
    """Capacity mode Replace, stable taking its pods back: converging, or
    Stalled when stable's own pods cannot become ready (crash-looping, or not
    ready within progressDeadlineSeconds of being scheduled); the canary's
    ready pods keep serving meanwhile, as the floor needs them."""
    inputs = ctx.inputs
    where = (f"stable {stable_replicas}, canary {canary or 0} pods, {weights.canary}% of traffic on the canary "
             f"(capacity mode Replace)")
    deadline = timedelta(seconds=inputs.spec.rollout.progress_deadline_seconds)
    stable_pods = sorted((pod for pod in inputs.observed.pods if pod.role == "stable"), key=lambda pod: pod.name)
    for pod in stable_pods:
        # Between two crashes a looping container runs (even ready): the
        # stall holds through the kubelet's back-off window, not only while
        # the pod waits. No restart count in the message: it grows every few
        # seconds, and would rewrite the status on every pass.
        if crash_looping(pod, inputs.now):
            return stuck(PODS_CRASH_LOOPING, f"stable pod {pod.name} is crash-looping: the canary's pods keep "
                                             f"serving; {where}")
    for pod in stable_pods:
        if pod.ready:
            continue
        if pod.unschedulable and pod.created_at is not None and inputs.now - pod.created_at > deadline:
            reason = INSUFFICIENT_CAPACITY if lacks_resources(pod.unschedulable) else UNSCHEDULABLE
            return stuck(reason, f"stable pod {pod.name} cannot be scheduled: {pod.unschedulable}; still "
                                 f"unschedulable after {deadline.seconds}s (spec.rollout.progressDeadlineSeconds): "
                                 f"the canary's pods keep serving; {where}")
        if pod.scheduled_at is not None and inputs.now - pod.scheduled_at > max(
                deadline, timedelta(seconds=pod.load_timeout_seconds or 0) if pod.loading else deadline):
            return stuck(PROGRESS_DEADLINE_EXCEEDED, f"stable pod {pod.name} not ready within "
                                                     f"{deadline.seconds}s of being scheduled "
                                                     f"(spec.rollout.progressDeadlineSeconds): the canary's pods "
                                                     f"keep serving; {where}")
    return converging(RESTORING_STABLE, f"stable is taking back its {ctx.budget.replicas} pods from the canary: "
                                        f"{where}")


def _fit(ctx: _Context, canary: int | None, weights: Weights,
         stable_revision: str | None = None) -> tuple[int, int | None, Weights, bool, bool]:
    """Mode Replace: what this pass can do toward the wanted canary size and
    weights within the budget (rollout/capacity.py): (stable replicas,
    canary replicas or None to remove it, weights, still on the way, the
    canary Deployment scaled as it is rather than re-templated)."""
    inputs, budget = ctx.inputs, ctx.budget
    stable_pods, canary_pods = _role_pods(ctx)
    carried = _carried(ctx)
    weighted = ctx.provider.weighted
    # Without a route the weights are the ready-pod ratio: only the canary's size says which way.
    growing = canary is not None and canary >= canary_pods.replicas and (not weighted or weights.canary >= carried)
    if growing:
        layout = forward(budget, stable_pods, canary_pods, carried=carried, weight=weights.canary,
                         canary_target=canary, weighted=weighted)
    else:
        layout = backward(budget, stable_pods, canary_pods, carried=carried, weighted=weighted,
                          canary_target=canary or 0, weight=weights.canary)
    kept = None if canary is None and layout.canary == 0 else layout.canary
    live = inputs.observed.stable
    rolling = live is not None and (stable_revision is not None and live.revision != stable_revision or any(
        pod.role == "stable" and pod.revision != live.revision for pod in inputs.observed.pods))
    if rolling:
        # Stable is re-templated (or still rolling to its template), and its
        # own rolling update adds up to maxSurge pods: it grows only into room
        # that leaves for them (found by the property test).
        room = budget.total - budget.surge - max(kept or 0, canary_pods.pods)
        layout = replace(layout, stable=min(layout.stable, max(stable_pods.replicas, room)))
    written = Weights.to_canary(layout.weight) if weighted else weights
    end_stable = stable_goal(budget, canary or 0) if growing else budget.replicas
    moving = (layout.stable, layout.canary) != (end_stable, canary or 0) \
        or (weighted and (layout.weight != weights.canary or carried != layout.weight))
    observed = inputs.observed.canary
    # Walking a canary back, its pods stay as they are; growing one renders
    # the spec's revision (a leftover canary Deployment at 0 pods included).
    frozen = not growing and kept is not None and observed is not None and observed.revision != inputs.revision
    return layout.stable, kept, written, moving, frozen


def _budget(spec, observed) -> Budget | None:
    """Capacity mode Replace's budget: around spec.replicas, or under
    autoscaling around the total the HPA asks for (the scale subresource)."""
    if spec.rollout.capacity.mode != "Replace" or spec.rollout.strategy != "Canary":
        return None
    replicas = spec.fixed_replicas
    if spec.autoscaling is not None:
        running = sum(d.replicas for d in (observed.stable, observed.canary) if d is not None)
        replicas = spec.autoscaling.total(running)
    if not replicas:
        return None
    surge, unavailable = spec.rollout.capacity.budget(replicas)
    return Budget(replicas=replicas, surge=surge, unavailable=unavailable)


def _role_pods(ctx: _Context) -> tuple[RolePods, RolePods]:
    """Both roles' pods as capacity to count on."""
    observed, now = ctx.inputs.observed, ctx.inputs.now

    def role(name: str, deployment) -> RolePods:
        pods = [pod for pod in observed.pods if pod.role == name]
        replicas = deployment.replicas if deployment is not None else 0
        # Ready for sure: what both the pods and their Deployment say, pods of
        # the Deployment's own revision only (ready pods above its size are on
        # their way out, a rolling update is replacing the others). Ready at
        # most: every pod not shown to be failing. A cache lagging behind the
        # cluster (the pods', the Deployment's, or both) then neither makes a
        # gone pod count as capacity nor a serving one look idle: only a pod
        # seen crash-looping, unschedulable, unable to start or past its
        # loadTimeout is taken away as one that carries nothing (all found by
        # the property test).
        # A crash-looping pod is ready between two crashes: it is no capacity
        # to hand traffic or pods back to (Argo Rollouts #3020), so it is not
        # ready for sure. But while it is ready it serves: it is not taken
        # away as one that carries nothing (a rolled-back canary's looping pod
        # was removed while stable had no ready pod, leaving none; found by
        # the property test). It goes when stable covers the floor, or during
        # its back-off, when it serves nothing.
        said = deployment.ready_replicas if deployment is not None else 0
        looping_ready = sum(1 for p in pods if p.ready and crash_looping(p, now))
        current = sum(1 for p in pods if p.ready and not crash_looping(p, now)
                      and deployment is not None and p.revision == deployment.revision)
        failing = sum(1 for p in pods if not p.ready and _failing(p, now))
        return RolePods(replicas=replicas, pods=len(pods), ready=min(replicas, max(0, said - looping_ready), current),
                        ready_at_most=min(replicas, max(said, len(pods) - failing)))
    return role("stable", observed.stable), role("canary", observed.canary)


def _failing(pod, now) -> bool:
    """Shown not to serve: crash-looping, unschedulable, unable to start, or
    past its loadTimeout."""
    stuck_reasons = (*IMAGE_PULL_WAITING_REASONS, *CONFIG_WAITING_REASONS)
    return (bool(pod.unschedulable) or pod.loading_past_budget(now) or crash_looping(pod, now)
            or any(waiting.reason in stuck_reasons for waiting in pod.waiting))


def _carried(ctx: _Context) -> int:
    """The canary's share of the traffic now: the route read back, or with
    the replicas provider the ready-pod ratio."""
    if ctx.provider.weighted:
        return ctx.inputs.weights.canary if ctx.inputs.weights is not None else 0
    stable, canary = _role_pods(ctx)
    ratio = Weights.from_ratio(stable.ready, canary.ready)
    return ratio.canary if ratio is not None else 0


def _prepend(decision: Decision, events, history) -> Decision:
    report = replace(decision.report, history=(*history, *decision.report.history))
    return replace(decision, events=(*events, *decision.events), report=report)


# -- small facts ----------------------------------------------------------------


def _in_flight(state: RolloutState) -> str | None:
    """The canary revision requests may target: only one in flight."""
    return state.canary.revision if state.stage in ACTIVE and state.canary is not None else None


def _carried_out(state: RolloutState) -> dict[str, str]:
    """Requests the recorded state shows were acted on: the last canary rolled
    back (an abort) or promoted (a promote)."""
    if state.canary is None:
        return {}
    if state.stage == Stage.ROLLED_BACK:
        return {ABORT: state.canary.revision}
    if state.stage == Stage.STABLE and state.stable is not None and state.stable.revision == state.canary.revision:
        return {PROMOTE: state.canary.revision}
    return {}


def _refusals(requests: Requests) -> tuple[Event, ...]:
    return tuple(Event(WARNING, "RequestIgnored", f"{key} ignored: {why}") for key, why in requests.refused)


def _desired_as_stable(ctx: _Context) -> StableRevision:
    return StableRevision(revision=ctx.inputs.revision, snapshot=take_snapshot(ctx.inputs.spec),
                          runtime=ctx.inputs.runtime)


def _stable_spec(ctx: _Context, state: RolloutState):
    return spec_for_stable(ctx.inputs.spec, state.stable.snapshot)


def _target_weight(ctx: _Context, state: RolloutState) -> int:
    """The weight the canary is being sized for: the current step's, if it
    sets one. Copies of requests need pods as much as requests do (mode
    Surge; in mode Replace stable keeps the pods all requests still need)."""
    mirror = state.mirror if ctx.budget is None else 0
    if state.stage == Stage.CANARY and blue_green(ctx.inputs.spec):
        return SWITCH  # the preview runs at full size from the start
    if state.stage == Stage.CANARY and state.step < len(ctx.steps):
        step = ctx.steps[state.step]
        if step.set_weight is not None:
            return max(state.weight, mirror, step.set_weight)
        if step.set_mirror is not None and ctx.budget is None:
            return max(state.weight, mirror, step.set_mirror.percent)
    return max(state.weight, mirror)


def _wanted_canary_pods(ctx: _Context, state: RolloutState) -> int:
    if ctx.provider.weighted and state.stage == Stage.CANARY and \
            smoke.needs_a_pod(ctx.inputs.spec, state, min(state.step, len(ctx.steps))):
        # A smoke check runs against the canary's Service: it needs a pod
        # (at weight 0 a weighted route sends it no client request).
        return max(1, _wanted_canary_pods_for_steps(ctx, state))
    return _wanted_canary_pods_for_steps(ctx, state)


def _wanted_canary_pods_for_steps(ctx: _Context, state: RolloutState) -> int:
    if ctx.budget is not None:  # mode Replace: the canary's share of the replicas, stable giving way
        wanted = canary_pods_for(ctx.budget, _target_weight(ctx, state), weighted=ctx.provider.weighted)
        return max(1, wanted) if state.step >= len(ctx.steps) else wanted
    wanted = canary_replicas(ctx.base, _target_weight(ctx, state), weighted=ctx.provider.weighted)
    if state.step >= len(ctx.steps) and ctx.provider.weighted:
        return max(1, wanted)  # every step passed: promotion needs a proven canary pod (at 0%: no traffic)
    # With the replicas provider a canary pod is client traffic: at 0% there
    # is none, and promotion itself (stable's rolling update, checked by
    # _promotion_problem) proves the revision.
    return wanted


def _settled_canary_pods(ctx: _Context, state: RolloutState) -> int:
    """The canary's pods Ready long enough (ENDPOINTS_SETTLE_SECONDS) for a
    gateway to know them: what a route's weight, copies or header requests
    may be sent to."""
    return sum(1 for pod in canary_pods(ctx.inputs, state) if pod.ready_for(ctx.inputs.now, ENDPOINTS_SETTLE_SECONDS))


def _canary_ready_for(ctx: _Context, state: RolloutState, weight: int) -> bool:
    if ctx.provider.weighted:
        # A gateway sends the route's weight to the endpoints it knows: a pod
        # reaches them through the EndpointSlice controller and then the
        # gateway's own config reload, seconds after the pod turns Ready.
        # Raised before, the weight goes to a backend with no endpoint yet
        # (Traefik: 503 "no available server", seen on the real node under load).
        return _settled_canary_pods(ctx, state) >= _pods_to_carry(ctx, weight)
    wanted = (canary_pods_for(ctx.budget, weight, weighted=False) if ctx.budget is not None
              else canary_replicas(ctx.base, weight, weighted=False))
    return canary_ready_replicas(ctx.inputs, state) >= wanted


def _settled(stable: ObservedDeployment | None, revision: str, fixed: int | None) -> bool:
    """The stable Deployment runs `revision` on every replica, all ready, nothing left over."""
    return (
        stable is not None
        and stable.revision == revision
        and stable.observed_generation >= stable.generation
        and (fixed is None or stable.replicas == fixed)
        and stable.ready_replicas == stable.replicas == stable.updated_replicas == stable.status_replicas
    )


def _canary_requeue(ctx: _Context, state: RolloutState, awaiting_analysis: bool) -> float:
    inputs, now = ctx.inputs, ctx.inputs.now
    waits = []
    if awaiting_analysis or state.not_ready_since is not None or not _canary_ready_for(ctx, state, state.weight):
        waits.append(POLL_SECONDS)
    if state.step < len(ctx.steps):
        step = ctx.steps[state.step]
        if step.set_weight is not None or step.set_mirror is not None:
            waits.append(POLL_SECONDS)  # waiting for pods or for the route to read back
        elif step.pause.duration is not None and state.step_started_at is not None:
            end = state.step_started_at + timedelta(seconds=step.pause.seconds)
            waits.append((end - now).total_seconds())
    if inputs.spec.rollout.analysis is not None and state.last_analysis_at is not None and \
            (state.weight > 0 or state.mirror > 0 or blue_green(inputs.spec)):
        due = state.last_analysis_at + timedelta(seconds=interval_seconds(inputs))
        waits.append((due - now).total_seconds())
    return max(1.0, min(waits)) if waits else POLL_SECONDS


def _history(inputs: Inputs, canary: CanaryRevision, result: str) -> HistoryEntry:
    return HistoryEntry(
        revision=canary.revision, model_version=canary.model_version, uri=canary.uri,
        result=result, time=format_time(inputs.now), registry=canary.registry,
    )


def _describe(canary: CanaryRevision | None) -> str:
    return f"{canary.model_version} (revision {canary.revision})" if canary else "the canary"
