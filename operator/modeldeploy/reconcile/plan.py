"""plan(world) -> Plan: one whole reconcile pass as a pure function.

    parse      the spec; an invalid one holds everything as it is (InvalidSpec)
    decide     the rollout machine: which revision each role renders, how many
               pods, which weights, what to report
    build      the desired children (builders, the traffic provider's routes)
    guard      a child name held by another owner holds everything (NameConflict)
    diff       only the children whose live copy differs are applied; the ones
               no longer wanted are pruned, after the applies (the route moves
               traffic off the canary before its Deployment goes)
    report     the status as it will be once the writes land, and the Events

The controller runs it as observe -> plan -> write: apply, prune, write the
status, and only then consume the promote/abort annotations (a request is
recorded before it is forgotten). When analysis is due, the first call
returns only `queries`; the controller asks Prometheus and plans again with
the answers. `modeldeploy render`, the golden tests, the benchmark and the
simulated world in the property tests all call this same function.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from .. import conditions as c
from ..api import InvalidSpec, parse_spec
from ..api.registry import RegistryLookup
from ..api.spec import ModelDeploymentSpec
from ..api.status import TrafficStatus
from ..builders.children import shared_children
from ..builders.deployment import build_deployment
from ..builders.labels import MODEL_VERSION, REVISION
from ..builders.naming import Role, deployment_name
from ..builders.ownership import Owner
from ..builders.revision import revision_of
from ..rollout import AnalysisPlan, Decision, Event, Inputs, decide, plan_analysis, read_state
from ..rollout.decision import WARNING
from ..rollout import smoke
from ..rollout.snapshot import take_snapshot
from ..runtimes import ResolvedRuntime, resolve_runtime, runtime_from_wire, runtime_to_wire
from ..status.derive import derive_status, held_status
from ..status.observed import (Observed, ObservedDeployment, observe_deployment, ready_after_rollout,
                               ready_canary_pods)
from ..status.transitions import format_time, parse_time
from ..traffic import provider_for
from ..builders.pod import pod_template_problems
from ..traffic.registry import weighted_providers
from ..traffic.replicas import achieved_weights, selected_role
from .drift import holds, needs_apply, replicas_handover
from .kinds import PRUNABLE, ROUTE_KINDS
from .registry import follows_registry, registry_hold_message, resolve_spec, with_registry
from .world import World

# The longest wait between two looks at something still converging: pod
# changes arrive as watch events, this only catches deadlines passing.
CONVERGING_POLL_SECONDS = 30.0


@dataclass(frozen=True)
class Plan:
    # Ask Prometheus these first, then plan again with World.analysis set;
    # nothing else in the plan is meaningful when this is set.
    queries: AnalysisPlan | None = None
    # Everything that should exist, in apply order (render and tests read it).
    desired: tuple[dict[str, Any], ...] = ()
    # Apply these under the handover field manager first (replicas handed to an HPA).
    handover: tuple[dict[str, Any], ...] = ()
    # Server-side apply these (the desired children whose live copy differs).
    apply: tuple[dict[str, Any], ...] = ()
    # (kind, name) of children to delete, after the applies.
    prune: tuple[tuple[str, str], ...] = ()
    # The status to write; None when it is unchanged.
    status: dict[str, Any] | None = None
    # Annotations to remove, after the status is written.
    consume: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()
    # Plan again within this many seconds; None: on watch events only.
    requeue_after: float | None = None
    # For the operator's metrics: rollout results recorded and analysis
    # verdicts judged by this pass.
    outcomes: tuple[str, ...] = ()
    verdicts: tuple[str, ...] = ()
    # ...and smoke-test check outcomes (Passed, Failed, TimedOut) judged by this pass.
    check_outcomes: tuple[str, ...] = ()
    # Where the rollout stands after this pass, and since when (the stage's
    # start): the controller keeps them to share canary slots at once,
    # before the status write that records them comes back.
    stage: str | None = None
    stage_since: datetime | None = None
    # Capacity mode Replace under autoscaling: set the ModelDeployment's
    # scale (spec.autoscaling.replicas) to this once, through its scale
    # subresource, so the HPA has a count to start from (it disables itself
    # on a target at 0); from then on the count is the HPA's.
    scale: int | None = None


def plan(world: World) -> Plan:
    model = world.model
    meta = model["metadata"]
    try:
        spec = parse_spec(model.get("spec"), known_formats=world.table.known_formats, name=world.name)
    except InvalidSpec as invalid:
        return _hold(world, c.INVALID_SPEC, f"spec is invalid: {invalid}")
    if world.refused is not None:
        return _hold(world, c.INVALID_SPEC, f"spec is invalid: {world.refused}")

    state = read_state(model.get("status"))
    asked = spec
    if follows_registry(spec):  # models:/: the artifact the registry resolved it to (reconcile/registry.py)
        spec = resolve_spec(asked, world.registry)
        if spec is None:
            return _hold(world, c.REGISTRY_UNAVAILABLE, registry_hold_message(asked, world.registry, state))
    owner = Owner.from_metadata(meta)
    provider = provider_for(spec)
    observed = Observed(stable=_deployment(world, Role.STABLE), canary=_deployment(world, Role.CANARY),
                        pods=world.pods, jobs=smoke.observed_jobs(world.name, world.children))
    runtime = _runtime(spec, state, world)
    problems = pod_template_problems(spec, runtime, name=world.name)
    if problems:  # refused before any pod: what serves is not touched
        return _hold(world, c.INVALID_SPEC, f"spec is invalid: {'; '.join(problems)}")
    inputs = Inputs(
        name=world.name, namespace=world.namespace, spec=spec, revision=revision_of(spec, runtime),
        state=state, observed=observed, weights=provider.read_weights(owner, world.children, observed),
        now=world.now, annotations=meta.get("annotations") or {}, runtime=runtime_to_wire(runtime),
        slots=world.canary_slots, mirror=provider.read_mirror(owner, world.children),
    )
    if world.analysis is None:
        queries = plan_analysis(inputs)
        if queries is not None:
            return Plan(queries=queries)
    else:
        inputs = replace(inputs, analysis=world.analysis)

    decision = decide(inputs)
    desired = desired_children(owner, spec, decision, world, runtime, revision=inputs.revision)
    taken = _taken(owner, desired, world)
    if taken:
        return _hold(world, c.NAME_CONFLICT, "; ".join(taken))

    wanted = {_key(m) for m in desired}
    # A check Job is created once and never re-applied (a Job's template is immutable).
    apply = tuple(m for m in desired if not (m["kind"] == "Job" and _key(m) in world.children)
                  and (world.write_unchanged or needs_apply(m, world.children.get(_key(m)))))
    # Manifests the live copy already holds (needs_apply said so): no new generation.
    held = {id(m) for m in desired} - {id(m) for m in apply}
    handover = tuple(h for m in apply if (h := replicas_handover(m, world.children.get(_key(m)))) is not None)
    prune = tuple(key for key in sorted(world.children) if key[0] in PRUNABLE and key[0] != "Job"
                  and key not in wanted)
    # Check Jobs: the finished ones kept for their logs, the last few per check (rollout/smoke.py).
    prune += tuple(("Job", job) for job in smoke.jobs_to_prune(observed.jobs, smoke.kept_jobs(decision.state, wanted)))

    after = _after_writes(observed, world, desired, prune, held)
    status = derive_status(
        name=world.name, namespace=world.namespace, generation=meta.get("generation", 0), spec=spec,
        revision=inputs.revision, observed=after, previous=model.get("status"), now=world.now,
        rollout=decision.report,
    )
    status = with_registry(status, asked, spec, world.registry)
    announced = {event.reason for event in decision.events}
    events = (*decision.events, *_newly_stalled(model.get("status"), status, announced))
    return Plan(
        desired=tuple(desired),
        handover=handover,
        apply=apply,
        prune=prune,
        status=_changed(world, status),
        consume=decision.remove_annotations,
        events=events,
        requeue_after=_requeue(decision, status, spec, world.now),
        outcomes=tuple(entry.result for entry in decision.report.history),
        verdicts=_verdicts(decision, analysed=inputs.analysis is not None, now=world.now),
        check_outcomes=tuple(r.outcome for r in decision.state.decisions
                             if r.outcome is not None and r not in inputs.state.decisions),
        stage=decision.state.stage.value,
        stage_since=decision.state.step_started_at,
        scale=_scale_to_start(spec, observed),
    )


def _scale_to_start(spec: ModelDeploymentSpec, observed: Observed) -> int | None:
    if not spec.hpa_governs_total or spec.autoscaling.replicas is not None:
        return None
    running = sum(d.replicas for d in (observed.stable, observed.canary) if d is not None)
    return spec.autoscaling.total(running)


def _runtime(spec: ModelDeploymentSpec, state, world: World) -> ResolvedRuntime:
    """The runtime the spec's revision runs. While the spec's pod-shaping
    fields are the stable revision's, the runtime stable was rolled out with
    (status.stable.runtime): an operator upgrade with a new runtime table
    re-templates nothing and starts no canary; the table's change reaches
    the model with its next spec change, through a canary (issue 9, defect 8)."""
    stable = state.stable
    if stable is not None and stable.runtime is not None and take_snapshot(spec) == stable.snapshot:
        recorded = runtime_from_wire(stable.runtime)
        if recorded is not None:
            return recorded
    return resolve_runtime(spec, world.table)


def desired_children(owner: Owner, spec: ModelDeploymentSpec, decision: Decision, world: World,
                     runtime: ResolvedRuntime | None = None, *, revision: str | None = None) -> list[dict]:
    """The Deployments as the rollout decided, then the shared children, then the routes.
    `revision`: revision_of(spec, runtime), when the caller has it (one hash less)."""
    provider = provider_for(spec)
    stable_runtime = runtime_from_wire(decision.stable_runtime) if decision.stable_runtime else None
    live_stable = world.children.get(("Deployment", deployment_name(world.name, Role.STABLE)))
    if decision.stable_template_from_live and live_stable is not None and decision.stable_replicas is not None:
        desired = [rescaled(live_stable, decision.stable_replicas)]
    else:
        desired = [build_deployment(owner, decision.stable_spec, world.table, role=Role.STABLE,
                                    replicas=decision.stable_replicas, runtime=stable_runtime)]
    live_canary = world.children.get(("Deployment", deployment_name(world.name, Role.CANARY)))
    if decision.canary_replicas is not None and decision.canary_template_from_live and live_canary is not None:
        desired.append(rescaled(live_canary, decision.canary_replicas))
    elif decision.canary_replicas is not None:
        desired.append(build_deployment(owner, spec, world.table, role=Role.CANARY,
                                        replicas=decision.canary_replicas, runtime=runtime,
                                        revision=revision if runtime is not None else None))
    desired += shared_children(owner, spec, weighted=provider.weighted, autoscaler_floor=decision.autoscaler_floor,
                               client_role=decision.client_role)
    desired += provider.build_routes(owner, spec, decision.weights, mirror=decision.mirror,
                                     headers_to_canary=decision.headers_to_canary)
    job = smoke.wanted_job(owner, spec, decision.state)
    if job is not None:
        desired.append(job)  # last: the canary's Service and pods come first
    return desired


def rescaled(live: dict[str, Any], replicas: int) -> dict[str, Any]:
    """A Deployment as it runs, at another size: its template (a revision the
    spec no longer names) and our labels and annotations as they are."""
    meta = live["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("modeldeploy.io/")}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": dict(meta.get("labels") or {}),
                     **({"annotations": annotations} if annotations else {}),
                     "ownerReferences": list(meta.get("ownerReferences") or [])},
        "spec": {**live["spec"], "replicas": replicas},
    }


# -- holding ----------------------------------------------------------------------


def _hold(world: World, reason: str, message: str) -> Plan:
    """Stall for `reason` and touch nothing that serves: no child is applied
    or pruned, no annotation consumed, and the status keeps the stable
    snapshot, the rollout's state and the traffic the route still carries."""
    previous = world.model.get("status")
    status = held_status(previous=previous, generation=world.model["metadata"].get("generation", 0),
                         reason=reason, message=message[:900], now=world.now, traffic=_held_traffic(world))
    return Plan(status=_changed(world, status), events=tuple(_newly_stalled(previous, status, set())))


def _held_traffic(world: World) -> TrafficStatus | None:
    """While held, nobody writes the route, but what it carries may not be
    what the status last said (the pass that wrote it may have lost its
    status write): read it back. Without a route the split is the ready-pod
    ratio, which moves as pods come and go: measure it. Either way the status
    says what is carried (issue 9, invariant 4)."""
    if any(kind in ROUTE_KINDS for kind, _ in world.children):
        owner = Owner.from_metadata(world.model["metadata"])
        observed = Observed(stable=_deployment(world, Role.STABLE), canary=_deployment(world, Role.CANARY),
                            pods=world.pods)
        for provider in weighted_providers():
            weights = provider.read_weights(owner, world.children, observed)
            if weights is not None:
                mirror = provider.read_mirror(owner, world.children)
                return TrafficStatus(stable=weights.stable, canary=weights.canary, verified=True,
                                     mirror=mirror or None,
                                     headers_to_canary=provider.read_headers_to_canary(owner, world.children))
        return None
    stable, canary = _deployment(world, Role.STABLE), _deployment(world, Role.CANARY)
    # A Deployment just scaled down or given another strategy (by writes of
    # this pass that landed before a 422) keeps no more ready pods than its
    # new size and its rolling update leave.
    stable_ready = min(stable.ready_replicas, ready_after_rollout(world.pods, "stable", stable)) if stable else 0
    canary_ready = min(ready_canary_pods(world.pods, canary.revision, canary), canary.replicas) if canary else 0
    # BlueGreen: the client Service may select one role only.
    weights = achieved_weights(stable_ready, canary_ready,
                               selected_role(Owner.from_metadata(world.model["metadata"]), world.children))
    return None if weights is None else TrafficStatus(stable=weights.stable, canary=weights.canary, verified=True)


def _taken(owner: Owner, desired: list[dict], world: World) -> list[str]:
    """Children whose names another owner's object already holds. Never
    adopted or overwritten: the later ModelDeployment stalls instead."""
    problems = []
    for manifest in desired:
        key = _key(manifest)
        if key in world.children:
            continue
        other = world.neighbours.get(key)
        if other is None:
            continue
        holder = _controller(other)
        if holder is not None and holder.get("uid") == owner.uid:
            continue
        who = f"{holder.get('kind')} {holder.get('name')}" if holder else "no controller (created by hand?)"
        problems.append(f"{key[0]} {key[1]} already exists and is controlled by {who}; rename this "
                        f"ModelDeployment or remove that object")
    return problems


def _controller(body) -> dict | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


# -- the status as it will be -------------------------------------------------------


def _deployment(world: World, role: Role) -> ObservedDeployment | None:
    return observe_deployment(world.children.get(("Deployment", deployment_name(world.name, role))))


def _after_writes(observed: Observed, world: World, desired: list[dict], prune, held=frozenset()) -> Observed:
    """What the Deployments will show once this plan's writes land: the
    revision and size just applied, a new generation where the spec changed,
    the pod counts as they are (the Deployment controller has not acted yet).
    `held`: ids of the manifests whose live copy already holds them whole
    (needs_apply was false), so their spec holds too: not compared again."""
    by_key = {_key(m): m for m in desired}

    def after(role: Role, now: ObservedDeployment | None) -> ObservedDeployment | None:
        key = ("Deployment", deployment_name(world.name, role))
        manifest = by_key.get(key)
        if manifest is None or key in prune:
            return None
        labels = manifest["metadata"]["labels"]
        annotations = manifest["metadata"].get("annotations") or {}
        live = world.children.get(key)
        replicas = manifest["spec"].get("replicas", now.replicas if now is not None else 1)
        if now is None or live is None:
            return ObservedDeployment(revision=labels.get(REVISION), model_version=annotations.get(MODEL_VERSION),
                                      generation=1, observed_generation=0, replicas=replicas)
        changed = id(manifest) not in held and not holds(manifest["spec"], live.get("spec") or {})
        return replace(now, revision=labels.get(REVISION), model_version=annotations.get(MODEL_VERSION),
                       generation=now.generation + (1 if changed else 0), replicas=replicas)

    return replace(observed, stable=after(Role.STABLE, observed.stable), canary=after(Role.CANARY, observed.canary))


def _changed(world: World, status: dict) -> dict | None:
    if not world.write_unchanged and status == (world.model.get("status") or {}):
        return None
    return status


def _stalled(status) -> tuple[str, str] | None:
    for cond in (status or {}).get("conditions", []):
        if cond.get("type") == c.STALLED and cond.get("status") == c.TRUE:
            return cond.get("reason", ""), cond.get("message", "")
    return None


def _newly_stalled(previous, status, announced: set[str]) -> tuple[Event, ...]:
    """A Warning when the ModelDeployment newly stalls: not on every pass that
    finds it stalled, nor when the rollout already announced it (RolledBack)."""
    stalled = _stalled(status)
    if stalled is None or stalled == _stalled(previous) or stalled[0] in announced:
        return ()
    return (Event(WARNING, stalled[0], stalled[1]),)


def _requeue(decision: Decision, status: dict, spec: ModelDeploymentSpec, now: datetime) -> float | None:
    """The rollout's own timer, or while converging, the moment the progress
    deadline passes (pod changes arrive as watch events before that)."""
    waits = [decision.requeue_after] if decision.requeue_after is not None else []
    reconciling = next((cond for cond in status.get("conditions", []) if cond["type"] == c.RECONCILING), None)
    # A revision waiting for the model to scale up from zero has no deadline:
    # the scale-up arrives as a watch event on the stable Deployment.
    if reconciling is not None and reconciling["status"] == c.TRUE and reconciling["reason"] != c.WAITING_FOR_SCALE_UP:
        deadline = parse_time(reconciling["lastTransitionTime"]) + timedelta(
            seconds=spec.rollout.progress_deadline_seconds)
        waits.append(min(CONVERGING_POLL_SECONDS, max(1.0, (deadline - now).total_seconds() + 1)))
    return min(waits) if waits else None


def _verdicts(decision: Decision, *, analysed: bool, now: datetime) -> tuple[str, ...]:
    if not analysed:
        return ()
    stamp = format_time(now)
    return tuple(record.verdict for record in decision.report.progress.decisions if record.time == stamp)


def _key(manifest: dict) -> tuple[str, str]:
    return manifest["kind"], manifest["metadata"]["name"]


def steady_children(*, name: str, namespace: str, uid: str, spec: Any, table,
                    registry: RegistryLookup | None = None) -> list[dict[str, Any]]:
    """What plan() makes the operator write for a new ModelDeployment with this
    raw `spec`: its first revision, fully rolled out, traffic 100/0 to stable.
    `modeldeploy render`, the golden tests and the benchmark's baseline use it,
    so they show the very path the operator runs. Raises InvalidSpec."""
    parse_spec(spec, known_formats=table.known_formats, name=name)  # the plan would only hold; say why
    model = {"metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1}, "spec": spec}
    world = World(model=model, children={}, neighbours={}, pods=(), now=datetime(2000, 1, 1, tzinfo=timezone.utc),
                  table=table, registry=registry)
    return [dict(manifest) for manifest in plan(world).desired]
