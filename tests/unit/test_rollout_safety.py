"""Rollout safety under real sequences of user actions (issue 9, section 1).

A hypothesis RuleBasedStateMachine drives the real reconcile.plan() loop
(tests/support/fake_cluster.Operator: observe and plan as controller.py does,
then the controller's own write and report code) against a fake API server
world (tests/support/fake_cluster.FakeCluster), with a second ModelDeployment
whose name may collide in the same namespace.
The actions: spec edits (version, image, replicas including 0, replicas <->
autoscaling, invalid specs, traffic provider, steps, strategy, analysis),
promote/abort annotations with any value, approvedVersion, pod behaviours
(ready, slow, never ready, crash loop, pending for capacity), Prometheus
answers (pass, fail, no data, +Inf, NaN, several series, unreachable), smoke
checks (rollout.checks) and their Jobs ending (Complete, failed, past their
deadline; issue 12 item 4: canary_runs_a_check_that_ends lines one up), HPA
load, operator passes from a stale cache or before the Deployment controllers
react, lost status writes (409/500), a 422 on a child, time passing with and
without the operator.

Uniform rule choice rarely lines up what some defects need (a canary already
taking traffic, then one thing happening to it), so compound rules make those
situations common, each a sequence of the same user and cluster actions:
canary_gets_traffic_then_prometheus_answers (defect 11),
promote_then_promoted_pods_crash (7), supersede_canary_while_its_pods_are_ready
(6), abort_with_a_lost_status_write (10), prometheus_stays_unreachable_for (15).

Reverting the fix of any of those defects makes this test fail. Shown by hand
edits in a scratch worktree, each confirmed by its named regression test
failing, then this test at the default settings (120 examples, 30 steps) with
--hypothesis-seed 1..5, without the example database; "examples" counts the
runs up to and including the first failing one:

| defect | reverted how                                                  | fails   | seeds | examples |
|--------|---------------------------------------------------------------|---------|-------|----------|
| 6      | checks.canary_ready_replicas: the canary Deployment's          | 3 or 4  | 5/5   | 4-107    |
|        | readyReplicas (min updatedReplicas while rolling), not pods    |         |       |          |
|        | of the canary's revision                                      |         |       |          |
| 7      | machine._promotion_problem returns None (no crash-loop check,  | 6 (3)   | 5/5   | 9-94     |
|        | no progressDeadlineSeconds while Promoting)                   |         |       |          |
| 10     | Controller._report patches the annotations off before the     | 2       | 5/5   | 5-22     |
|        | status write                                                  |         |       |          |
| 11     | analysis._judge judges NaN and +-Inf as numbers (NaN passes)  | 11      | 5/5   | 5-43     |
| 15     | machine._analyse: no rollback past consecutiveErrorLimit      | 6       | 5/5   | 3-20     |

Three changes made that so. Invariant 6 let a rollout paused by analysis wait
forever as an "open pause" even while Prometheus never answered, which is
defect 15 itself (0 of 2 seeds caught it): a pause by analysis is no open pause
when the analysis stayed silent through the wait (`silent`). A third of all runs
created the neighbour first under a colliding name, so fraud stalled with
NameConflict for the whole run and no compound rule could line up a canary
(defect 10 was missed on seed 2): now one run in four creates the neighbour
first. The defect 11 rule picked NaN once in seven (missed on seed 3): now +Inf
or NaN about half the time. Same CPU time as before (3 seeds each, ~30-40 s on a
loaded machine). Defect 7 on seed 1 failed invariant 3 instead: the promotion
with crash-looping pods completed, and a later version's canary pods served
at 0%; the same actions pass with the fix. Some seeds need ~100 of the 120
examples (6, 7): a soak makes a revert certain.

The invariants are the named `invariant_*` functions below; each docstring
states the promise as the README does. They are checked after every step
(around every pass where they are about a pass), and invariant 6 at the end of
every run by letting time pass under the same world (the operator passing as
the real one would: on changes, requeues and the resync).

Examples: MODELDEPLOY_SAFETY_EXAMPLES per half (default 1,000 runs of up to
30 steps). `make test` runs two halves, this module and
test_rollout_safety_second_half.py (the same machine, its own random
examples), which pytest-xdist runs side by side: 2,000 runs, about 60,000
actions. ~85 ms of CPU per run; 1,000 took 272 s wall on the 2-core machine
while a cold Go build and real-node tests shared it, 2,000 about 330 s on a
quieter one. At the 120 used for the table above the slowest revert took 107,
so the default catches each of them many times over. A long soak:

    MODELDEPLOY_SAFETY_EXAMPLES=5000 .venv/bin/pytest tests/unit/test_rollout_safety.py -q -p no:cacheprovider

A failing example prints as the list of actions (state.edit_version(...), ...);
MODELDEPLOY_SAFETY_INVARIANTS=2,4 checks only some invariants (the extra
checks are numbered by their defect: 9 requests, 11 analysis).
"""
from __future__ import annotations

import collections
import copy
import json
import math
import os
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from modeldeploy.api import InvalidSpec, parse_spec
from modeldeploy.builders import compute_revision
from modeldeploy.builders.labels import MODEL_VERSION, REVISION, ROLE
from modeldeploy.rollout import ABORT, PROMOTE
from modeldeploy.rollout.capacity import Budget, carriers
from modeldeploy.rollout.blue_green import effective_steps
from modeldeploy.conditions import WAITING_FOR_SCALE_UP
from modeldeploy.rollout.machine import SCALED_TO_ZERO, _budget
from modeldeploy.builders.pod import load_budget
from modeldeploy.runtimes import load_runtime_table, resolve_runtime
from modeldeploy.settings import OperatorSettings
from modeldeploy.status.transitions import parse_time
from support.fake_cluster import (ANSWERS, BEHAVIOURS, CRASH_LOOP, INF, NAN, PASS, READY, SEVERAL_SERIES,
                                  UNREACHABLE, FakeCluster, Operator)

TABLE = load_runtime_table()
NAME = "fraud"
EXAMPLES = int(os.environ.get("MODELDEPLOY_SAFETY_EXAMPLES", "1000"))
# Check only these invariants (e.g. "3,4"): to minimise one failure at a time.
ONLY = {int(n) for n in os.environ.get("MODELDEPLOY_SAFETY_INVARIANTS", "").replace(",", " ").split()}
settings.register_profile(
    "rollout-safety",
    max_examples=EXAMPLES,
    stateful_step_count=int(os.environ.get("MODELDEPLOY_SAFETY_STEPS", "30")),
    deadline=None,
    suppress_health_check=(HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large),
)

DEADLINE = 60  # progressDeadlineSeconds of every generated spec
STEP_PLANS = {
    "default": None,  # the API's default: 20%, pause 60s, 50%, pause 60s
    "one-step": [{"setWeight": 50}, {"pause": {"duration": "10s"}}],
    "approval": [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}, {"pause": {"duration": "10s"}}],
    "no-steps": [],
    "pause-first": [{"pause": {"duration": "10s"}}, {"setWeight": 50}],
    "fine": [{"setWeight": 1}, {"setWeight": 10}, {"pause": {"duration": "20s"}}],
    # Issue 12: copies first (refused with the replicas provider: held as invalid).
    "shadow": [{"setMirror": {"percent": 50}}, {"pause": {"duration": "10s"}}, {"setWeight": 50}],
}
CANARY_HEADERS = [{"name": "x-model-canary", "value": "true"}]
# Issue 12 item 4: smoke-test checks (their Jobs end by the rule
# check_job_finishes, or by their activeDeadlineSeconds in the fake Job
# controller). PreRollout with the replicas provider is refused (held as invalid),
# and so is Step 1 with no steps.
CHECK_TIMEOUT = 30
CHECK_JOB = {"template": {"template": {"spec": {"containers": [{"name": "smoke", "image": "smoke:1"}]}}}}
CHECK_PLANS = {
    None: [],
    "pre-rollout": [("smoke", "PreRollout")],
    "pre-promotion": [("e2e", "PrePromotion")],
    "step-1": [("mid", "Step 1")],
    "pre-rollout+pre-promotion": [("smoke", "PreRollout"), ("e2e", "PrePromotion")],
}
JOB_OUTCOMES = ("Complete", "BackoffLimitExceeded", "DeadlineExceeded")
GATEWAY = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "gateways"}],
                                                      "hostnames": ["fraud.example.com"]}}
ISTIO = {"provider": "istio", "istio": {"hosts": ["fraud.example.com"], "gateways": ["istio-system/public"]}}
PROVIDERS = {"replicas": None, "gatewayAPI": GATEWAY, "istio": ISTIO}
# spec.rollout.capacity (issue 11): Replace with no spare pod, and Replace
# with one spare pod and none unavailable (every swap then needs the surge).
CAPACITY = {"Surge": None, "Replace": {"mode": "Replace", "maxSurge": 0},
            "Replace-surge": {"mode": "Replace", "maxSurge": 1, "maxUnavailable": 0}}
METRIC = {"name": "error-rate", "query": 'sum(rate(errors{revision="{{canary.revision}}"}[1m]))', "max": 0.05}
SAMPLES_QUERY = 'sum(increase(requests{revision="{{canary.revision}}"}[1m]))'
ANALYSIS_INTERVAL, FAILURE_LIMIT, ERROR_LIMIT = 10, 1, 2
RESYNC_SECONDS = OperatorSettings().resync_seconds  # the operator passes every model this often regardless


@dataclass
class SpecState:
    """The user's spec, as the fields the actions change."""

    version: str = "v1"
    image: str | None = None
    replicas: int | None = 2
    autoscaling: tuple[int, int] | None = None
    keda: bool = False  # autoscaling.engine KEDA (issue 14): minReplicas may be 0
    provider: str = "replicas"
    steps: str = "one-step"
    strategy: str = "Canary"
    approved: str | None = None
    analysis: str | None = "Pause"  # onInconclusive, or None for no metric analysis
    min_samples: int = 0  # with a samplesQuery counting the requests
    invalid: str | None = None
    capacity: str = "Surge"  # a key of CAPACITY
    headers: bool = False  # traffic.canaryHeaders (with a weighted provider)
    auto_promote: bool = False  # rollout.blueGreen.autoPromote (strategy BlueGreen)
    checks: str | None = None  # a key of CHECK_PLANS

    def raw(self) -> dict:
        model = {"uri": f"s3://models/fraud/{self.version}", "version": self.version, "format": "sklearn"}
        raw: dict = {"model": model, "resources": {"requests": {"cpu": "100m"}}}
        if self.image:
            raw["runtime"] = {"image": self.image, "port": 8080}
        if self.invalid == "unknown-format":
            model["format"] = "pickle9"
            raw.pop("runtime", None)
        elif self.invalid == "reserved-env":
            raw.setdefault("runtime", {})["env"] = [{"name": "MODELDEPLOY_MODEL_DIR", "value": "/tmp/x"}]
        if self.autoscaling is not None:
            raw["autoscaling"] = {"minReplicas": self.autoscaling[0], "maxReplicas": self.autoscaling[1]}
            if self.keda:
                raw["autoscaling"] |= {"engine": "KEDA", "keda": {"triggers": [
                    {"type": "prometheus", "metadata": {"serverAddress": "http://p:9090", "query": "q",
                                                        "threshold": "5"}}]}}
        else:
            raw["replicas"] = self.replicas
        rollout: dict = {"strategy": self.strategy, "progressDeadlineSeconds": DEADLINE}
        if self.strategy == "BlueGreen":  # its steps are its own (a user leaves them out)
            rollout["blueGreen"] = {"autoPromote": self.auto_promote, "scaleDownDelay": "10s"}
        elif STEP_PLANS[self.steps] is not None:
            rollout["steps"] = copy.deepcopy(STEP_PLANS[self.steps])
        if self.approved:
            rollout["approvedVersion"] = self.approved
        if self.analysis:
            rollout["analysis"] = {"interval": f"{ANALYSIS_INTERVAL}s", "failureLimit": FAILURE_LIMIT,
                                   "consecutiveErrorLimit": ERROR_LIMIT, "onInconclusive": self.analysis,
                                   "prometheus": {"address": "http://prometheus.monitoring:9090"},
                                   "metrics": [METRIC]}
            if self.min_samples:
                rollout["analysis"].update(minSamples=self.min_samples, samplesQuery=SAMPLES_QUERY)
        if CAPACITY[self.capacity]:
            rollout["capacity"] = dict(CAPACITY[self.capacity])
        if CHECK_PLANS[self.checks]:
            rollout["checks"] = [{"name": name, "at": at, "timeout": f"{CHECK_TIMEOUT}s",
                                  "job": copy.deepcopy(CHECK_JOB)} for name, at in CHECK_PLANS[self.checks]]
        raw["rollout"] = rollout
        if PROVIDERS[self.provider]:
            raw["traffic"] = copy.deepcopy(PROVIDERS[self.provider])
            if self.headers:
                raw["traffic"]["canaryHeaders"] = copy.deepcopy(CANARY_HEADERS)
        return raw


# (name, the raw spec as JSON) -> [parsed spec or None, its revision once asked].
# The checks parse the same few specs over and over (every tick asks whether
# the spec's revision takes traffic); parsing is deterministic in the JSON
# text (key order kept) and the parsed spec is frozen, so it is shared.
_PARSED: dict[tuple[str, str], list] = {}
_UNSET = object()


def _parse(raw: dict, name: str) -> list:
    key = (name, json.dumps(raw))
    found = _PARSED.get(key)
    if found is None:
        try:
            spec = parse_spec(raw, known_formats=TABLE.known_formats, name=name)
        except InvalidSpec:
            spec = None
        if len(_PARSED) >= 4096:
            _PARSED.clear()
        found = _PARSED[key] = [spec, _UNSET]
    return found


def parsed(raw: dict, name: str = NAME):
    return _parse(raw, name)[0]


def revision_of(raw: dict, name: str = NAME) -> str | None:
    found = _parse(raw, name)
    if found[1] is _UNSET:
        found[1] = compute_revision(found[0], TABLE) if found[0] is not None else None
    return found[1]


# --- what the cluster really does (read from the fake, never from the operator) --------


def _rollout(status: dict) -> dict:
    return (status or {}).get("rollout") or {}


def _in_flight(status: dict) -> str | None:
    """The canary revision the stored status says is being tried out."""
    rollout = _rollout(status)
    return rollout.get("revision") if rollout.get("stage") in ("Canary", "Promoting") else None


def _condition(status: dict, type_: str) -> dict:
    return next((c for c in (status or {}).get("conditions", []) if c["type"] == type_), {})


def _share(stable: float, canary: float) -> int | None:
    # Half a percent rounds up, as the status documents (traffic.Weights);
    # Python's round() would make 62.5% 62 (found by a soak: 5 of 8 pods).
    return None if stable + canary <= 0 else min(100, int(100 * canary / (stable + canary) + 0.5))


def route_share(cluster: FakeCluster, name: str) -> int | None:
    found = cluster.route_weights(name)
    return None if found is None else _share(*found[1])


def canary_deployment_revision(cluster: FakeCluster, name: str) -> str | None:
    obj = cluster.objects.get(("Deployment", f"{name}-canary"))
    return obj.body["spec"]["template"]["metadata"]["labels"].get(REVISION) if obj is not None else None


def ready_pods(cluster: FakeCluster, name: str, role: str, revision: str | None = None) -> int:
    return sum(1 for p in cluster.pods.values()
               if p.labels.get("modeldeploy.io/name") == name and p.labels.get(ROLE) == role
               and (revision is None or p.labels.get(REVISION) == revision) and cluster.ready(p))


def crash_looping(body: dict, now) -> bool:
    """CrashLoopBackOff now, or restarted twice with the last crash < 10 minutes ago."""
    for c in (body.get("status") or {}).get("containerStatuses") or ():
        if ((c.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            return True
        finished = ((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if c.get("restartCount", 0) >= 2 and finished and now - parse_time(finished) < timedelta(minutes=10):
            return True
    return False


# --- the invariants --------------------------------------------------------------------


@dataclass
class Oracle:
    """What the user did and saw, to judge the operator by."""

    known_stable: str | None = None  # the last status.stable.revision ever stored
    barred: dict[str, str] = field(default_factory=dict)  # revision -> why it must not become stable
    promote_target: str | None = None  # the canary in flight when the user set promote=true
    abort_target: str | None = None
    # Smoke checks: (revision, check) whose Job completed; revisions that
    # have carried client traffic (weight, mirror, header rule) ever; revisions
    # whose running check's Job failed in this attempt (until the user moves
    # the spec to another revision).
    passed_checks: set[tuple[str, str]] = field(default_factory=set)
    exposed: set[str] = field(default_factory=set)
    check_failed: dict[str, str] = field(default_factory=dict)


@dataclass
class PassView:
    """Everything around one pass of the primary ModelDeployment."""

    raw: dict  # the spec at the pass
    spec: object  # parsed, or None when invalid
    annotations: dict  # on the object when the pass started
    before: dict  # stored status before
    after: dict  # stored status after (== before when the write was lost)
    completed: bool
    stable_ready_before: int
    stable_ready_after: int  # after the pass and the controllers' immediate reaction
    desired: int | None
    recreate: bool
    share_before: int | None
    share_after: int | None
    canary_revision_before: str | None
    canary_revision_after: str | None
    base: int | None
    now: object
    stale: bool = False
    answer: str | None = None  # what Prometheus answered, when the pass ran analysis
    # Capacity mode Replace (the spec at the pass): its budget, and the
    # model's pods (any role) and ready ones around the pass.
    budget: Budget | None = None
    pods_before: int = 0
    pods_after: int = 0
    ready_before: int = 0
    ready_after: int = 0
    # Whether the Deployment controllers acted on the pass's writes before
    # the checks (else the next pass comes first), and the replicas the pass
    # left stable's Deployment asking for.
    reacted: bool = True
    stable_replicas_after: int | None = None
    mirror_before: int = 0  # percent of requests the route copied to the canary before the pass
    headers_before: str | None = None  # where the route sent requests with the canary headers before the pass


def _promote_ok(view: PassView, oracle: Oracle, revision: str) -> bool:
    value = view.annotations.get(PROMOTE)
    return value == revision or (value == "true" and oracle.promote_target == revision)


def _steps_ok(view: PassView, revision: str) -> tuple[bool, str]:
    """Could the remaining steps of `revision`'s canary pass in this pass?"""
    rollout = _rollout(view.before)
    if view.spec is None:
        return False, "the spec is invalid"
    steps = effective_steps(view.spec.rollout)
    start = rollout.get("step", 0) if rollout.get("revision") == revision and rollout.get("stage") == "Canary" else 0
    started = rollout.get("stepStartedAt")
    for index in range(start, len(steps)):
        step = steps[index]
        if step.pause is None or step.set_weight is not None:
            continue
        if step.pause.duration is None:
            version = view.spec.model.version
            if view.spec.rollout.approved_version != version:
                return False, f"step {index + 1} waits for approval and approvedVersion is not {version}"
            continue
        from modeldeploy.api.durations import parse_duration
        need = parse_duration(step.pause.duration)
        if index != start or started is None or (view.now - parse_time(started)).total_seconds() < need:
            return False, f"step {index + 1} pauses {step.pause.duration}, not over yet"
    return True, ""


def invariant_stable_only_by_a_legitimate_way(view: PassView, oracle: Oracle) -> None:
    """Invariant 1. A revision becomes stable only in one of these ways: it is
    the first revision; it went through its full step list; it was promoted by
    the promote annotation (value "true" while it was the canary in flight, or
    its own revision) or approvedVersion; it uses the Recreate strategy; or the
    spec was set back to the stable revision. Invalid specs, scaling to 0,
    restarts and lost writes never make a revision stable, and never wipe the
    stable revision from the status. Checked when promotion starts (stage
    Promoting) and when status.stable.revision changes."""
    after_stable = ((view.after or {}).get("stable") or {}).get("revision")
    if oracle.known_stable is not None and view.completed and after_stable is None:
        raise AssertionError(f"invariant 1: status.stable was wiped (it was {oracle.known_stable})")
    rollout, before = _rollout(view.after), _rollout(view.before)
    promoting_before = before.get("revision") if before.get("stage") == "Promoting" else None
    entering = None
    if rollout.get("stage") == "Promoting" and rollout.get("revision") != promoting_before:
        entering = rollout.get("revision")  # promotion starts
    elif after_stable is not None and after_stable != oracle.known_stable and after_stable != promoting_before:
        entering = after_stable  # stable changes without a promotion in flight
    if entering is None:
        return
    if oracle.known_stable is None:
        return  # the first revision
    if view.recreate and revision_of(view.raw) == entering:
        return
    if entering == oracle.known_stable:
        return  # the spec set back to the stable revision
    if _promote_ok(view, oracle, entering):
        return
    # With `steps: []` the full step list is empty: promotion may start in the
    # pass that first sees the revision (the replicas provider runs no canary
    # pod at 0%; promotion's own checks judge it).
    no_steps = view.spec is not None and not effective_steps(view.spec.rollout) and revision_of(view.raw) == entering
    if not no_steps and _rollout(view.before).get("revision") != entering and _in_flight(view.before) != entering:
        raise AssertionError(
            f"invariant 1: revision {entering} became {'promoting' if rollout.get('stage') == 'Promoting' else 'stable'}"
            f" without ever being the canary in flight (stable was {oracle.known_stable}; spec "
            f"replicas={view.raw.get('replicas')}, annotations={view.annotations})")
    ok, why = _steps_ok(view, entering)
    if not ok:
        raise AssertionError(f"invariant 1: revision {entering} started promotion before its steps were done: {why}"
                             f" (annotations {view.annotations})")


def invariant_rolled_back_never_stable(view: PassView, oracle: Oracle) -> None:
    """Invariant 2. A rolled-back (or aborted) revision never becomes stable
    unless the user changes the spec away from it and back, or promotes it
    explicitly."""
    after_stable = ((view.after or {}).get("stable") or {}).get("revision")
    if after_stable is not None and after_stable != oracle.known_stable and after_stable in oracle.barred:
        if not _promote_ok(view, oracle, after_stable):
            raise AssertionError(f"invariant 2: revision {after_stable} became stable although it was "
                                 f"{oracle.barred[after_stable]}")


def _rollout_target(status: dict, steps) -> int:
    """The weight the rollout holds or is raising to now (the current step's setWeight)."""
    rollout = _rollout(status)
    weight = rollout.get("weight") or 0
    index = rollout.get("step", 0)
    if rollout.get("stage") == "Promoting":
        return 100  # the canary serves until the new stable is fully ready (README: Promotion)
    if rollout.get("stage") == "Canary" and steps is not None and index >= len(steps):
        # At its promotion gate (every step passed, or a promote skipped them),
        # waiting there for a PrePromotion check: promotion is due, and a
        # canary pod serving (mode Replace keeps one to promote in place; the
        # check needs one) is what promotion would do next.
        return 100
    if rollout.get("stage") == "Canary" and steps is not None and index < len(steps):
        weight = max(weight, steps[index].set_weight or 0)
    return weight


def _handing_back(status: dict) -> bool:
    """Capacity mode Replace after a promotion, a rollback or an abort: the
    canary Deployment keeps pods (status.capacity.canary) that serve until
    stable's own are ready again (README, GPUs and big models)."""
    return ((status or {}).get("capacity") or {}).get("canary", 0) > 0 and \
        _rollout(status).get("stage") not in ("Canary", "Promoting")


def invariant_canary_share_within_ready_capacity(cluster: FakeCluster, view: PassView | None, provider: str,
                                                 status: dict, name: str = NAME, steps=None) -> None:
    """Invariant 3. The canary's traffic share never exceeds what the ready pods
    of the canary's revision can carry; pods of a superseded canary do not
    count. Weighted providers: when a pass raises the route's canary weight to
    w for revision R (the canary Deployment's template revision; a new R starts
    from 0), at least ceil(base * w / 100) pods labelled role=canary and
    revision=R are Ready, base being the stable count the rollout sizes
    against (spec.replicas, or under autoscaling max(minReplicas, the stable
    Deployment's replicas)); and the client Service `<name>` never selects a
    ready canary pod. Replicas provider (the split is the ready-pod ratio
    behind `<name>`): no ready canary pod behind `<name>` is of another
    revision than the canary Deployment runs now, and none takes client
    traffic while the rollout is at 0% (no canary in flight, or neither the
    weight set nor the current step's setWeight is above 0)."""
    if provider == "replicas":
        rollout = (status or {}).get("rollout") or {}
        current = canary_deployment_revision(cluster, name)
        for pod in cluster.selected_pods(name):
            if pod.labels.get(ROLE) != "canary" or not cluster.ready(pod):
                continue
            if pod.labels.get(REVISION) != current:
                raise AssertionError(f"invariant 3: ready pod {pod.name} of superseded canary revision "
                                     f"{pod.labels.get(REVISION)} takes client traffic (the canary is now {current})")
            if _handing_back(status):
                continue  # capacity mode Replace: the canary's pods serve until stable has its own back
            if _in_flight(status) != current or _rollout_target(status, steps) == 0:
                raise AssertionError(f"invariant 3: canary pod {pod.name} takes client traffic while the rollout "
                                     f"is at 0% (stage {rollout.get('stage')}, step {rollout.get('step')}, "
                                     f"weight {rollout.get('weight')}): before the first setWeight")
        return
    if view is None:
        return
    for pod in cluster.selected_pods(name):
        if pod.labels.get(ROLE) == "canary" and cluster.ready(pod):
            raise AssertionError(f"invariant 3: the client Service {name} ({provider}) selects ready canary pod "
                                 f"{pod.name}: in-cluster callers bypass the route's weights")
    _headers_and_mirror_within_ready_capacity(cluster, view, status, name)
    share = view.share_after
    revision = view.canary_revision_after
    if not share or revision is None or view.base is None:
        return
    before = view.share_before or 0 if view.canary_revision_before == revision else 0
    if share <= before:
        return
    # Capacity mode Replace: the share of the least ready capacity accepted
    # (replicas - maxUnavailable), to the nearest pod (README, GPUs and big models).
    need = carriers(view.budget.floor, share) if view.budget is not None else math.ceil(view.base * share / 100)
    ready = ready_pods(cluster, name, "canary", revision)
    if ready < need:
        raise AssertionError(f"invariant 3: the route sends {share}% to canary revision {revision} "
                             f"(was {before}%), which needs {need} ready pods of it (base {view.base}); {ready} ready")


def _headers_and_mirror_within_ready_capacity(cluster: FakeCluster, view: PassView, status: dict, name: str) -> None:
    """Invariant 3 for the header rule and shadow copies (issue 12): requests
    with the canary headers go to the canary only while a canary is in flight
    with a ready pod of its revision, when a pass sends them there (as a
    weight, they stay where they are while a pass holds everything); a route
    copies requests only to the canary in flight, and a pass that raises the
    copies for revision R has the ready pods of R they need (as a weight
    would, at least one)."""
    revision = view.canary_revision_after
    stage = _rollout(status).get("stage")
    ready = ready_pods(cluster, name, "canary", revision) if revision else 0
    canary_service = f"{name}-canary"
    sent = cluster.route_header_backend(name) == canary_service and (
        view.headers_before != canary_service or view.canary_revision_before != revision)
    if sent:
        if stage != "Canary" or ready == 0:
            raise AssertionError(f"invariant 3: requests with the canary headers go to "
                                 f"{cluster.route_header_backend(name)} (stage {stage}, {ready} ready pods of "
                                 f"canary revision {revision})")
    mirror, target = cluster.route_mirror(name)
    if not mirror:
        return
    if stage != "Canary" or target != f"{name}-canary":
        raise AssertionError(f"invariant 3: the route copies {mirror}% of the requests to {target} at stage {stage}")
    before = view.mirror_before if view.canary_revision_before == revision else 0
    if mirror <= before or view.base is None:
        return
    need = 1 if view.budget is not None else max(1, math.ceil(view.base * mirror / 100))
    if ready < need:
        raise AssertionError(f"invariant 3: the route copies {mirror}% of the requests to canary revision {revision} "
                             f"(was {before}%), which needs {need} ready pods of it; {ready} ready")


def invariant_status_traffic_is_real(cluster: FakeCluster, status: dict, name: str = NAME) -> None:
    """Invariant 4. After each completed pass (once its writes have landed:
    the Deployment controllers have added or removed the pods it scaled),
    status.traffic equals what the route (HTTPRoute/VirtualService, when one
    exists) or else the ready pods behind the Service `<name>` (by role)
    actually carry."""
    traffic = (status or {}).get("traffic")
    if not traffic:
        return
    if cluster.route_weights(name) is not None:
        actual = route_share(cluster, name)
        what = "the route"
    else:
        pods = [p for p in cluster.selected_pods(name) if cluster.ready(p)]
        actual = _share(sum(1 for p in pods if p.labels.get(ROLE) != "canary"),
                        sum(1 for p in pods if p.labels.get(ROLE) == "canary"))
        what = "the ready pods behind the Service"
    if actual is None:
        return
    if (traffic.get("stable"), traffic.get("canary")) != (100 - actual, actual):
        raise AssertionError(f"invariant 4: status.traffic says {traffic.get('stable')}/{traffic.get('canary')}, "
                             f"{what} carries {100 - actual}/{actual}")
    mirror, _ = cluster.route_mirror(name)
    if (traffic.get("mirror") or 0) != mirror:
        raise AssertionError(f"invariant 4: status.traffic.mirror says {traffic.get('mirror')}, the route copies "
                             f"{mirror}%")
    header_backend = cluster.route_header_backend(name)
    if header_backend is not None and traffic.get("headersToCanary") != (header_backend == f"{name}-canary"):
        raise AssertionError(f"invariant 4: status.traffic.headersToCanary says {traffic.get('headersToCanary')}, "
                             f"the route sends requests with the canary headers to {header_backend}")


def invariant_capacity_kept(view: PassView) -> None:
    """Invariant 5. The ready serving capacity never drops below desired - 1
    because of the operator's writes: around each pass (the pass, then the
    Deployment controllers' immediate reaction), ready stable pods after >=
    min(ready before, desired - 1), desired being spec.replicas or under
    autoscaling max(minReplicas, the HPA's count). Through promotion,
    rollback, an HPA handoff and scaling; not for the Recreate strategy, which
    accepts downtime."""
    if view.recreate or view.desired is None:
        return
    if view.budget is not None:
        # Capacity mode Replace: stable gives its pods to the canary by
        # design; the ready pods of both roles keep the floor (those each
        # Deployment keeps through the pass: see _model_pods).
        floor = min(view.ready_before, view.budget.floor)
        if view.ready_after < floor:
            raise AssertionError(f"invariant 5: ready pods fell from {view.ready_before} to {view.ready_after} "
                                 f"(capacity mode Replace, at least {view.budget.floor} ready) after the "
                                 f"operator's writes")
        return
    floor = min(view.stable_ready_before, view.desired - 1)
    if not view.reacted:
        # Its writes take effect at the next pass's reaction (where pods
        # beyond what it asked for count as on their way out already):
        # judge what it wrote.
        if view.stable_replicas_after is not None and view.stable_replicas_after < floor:
            raise AssertionError(f"invariant 5: a pass left stable asking for {view.stable_replicas_after} "
                                 f"pods with {view.stable_ready_before} ready (desired {view.desired})")
        return
    if view.stable_ready_after < floor:
        raise AssertionError(f"invariant 5: ready stable pods fell from {view.stable_ready_before} to "
                             f"{view.stable_ready_after} (desired {view.desired}) after the operator's writes")


def invariant_pods_within_budget(view: PassView) -> None:
    """Invariant 10. Capacity mode Replace: the operator's writes never take
    the model's pods (both roles, every revision, terminating ones too)
    above replicas + maxSurge, nor further above it when they already were
    (the mode was just switched on, or the replicas lowered)."""
    if view.budget is None or view.recreate:
        return
    allowed = max(view.pods_before, view.budget.total)
    if view.pods_after > allowed:
        raise AssertionError(f"invariant 10: the model runs {view.pods_after} pods after the operator's writes "
                             f"(budget replicas + maxSurge = {view.budget.total}; {view.pods_before} before)")


def invariant_rollout_ends(status: dict, name: str = NAME, silent: bool = False) -> None:
    """Invariant 6. Every rollout ends in bounded time: Promoted, RolledBack,
    Aborted, or Stalled with a message. The only exception is an open pause
    waiting for approval, and the status must say so. (Checked at the end of
    every run, after time passed under the same world for a bound derived from
    the spec: progressDeadlineSeconds, pauses, analysis interval * limits.)
    `silent`: the analysis could not answer (Prometheus unreachable, several
    series) through the whole wait: a pause by analysis is then no open pause,
    it must have ended at consecutiveErrorLimit (defect 15)."""
    rollout = _rollout(status)
    stalled = _condition(status, "Stalled")
    if stalled.get("status") == "True" and stalled.get("message"):
        return
    stage = rollout.get("stage")
    # An open pause waiting for a person: an approval step, or an inconclusive
    # analysis under onInconclusive: Pause (README promise 6). The status must
    # say what it waits for.
    waiting_for = {"approval": "approv", "analysis": "waiting for a decision"}.get(rollout.get("pausedBy") or "")
    if stage == "Canary" and waiting_for is not None and not (silent and rollout.get("pausedBy") == "analysis"):
        if waiting_for in (status.get("message") or ""):
            return
        raise AssertionError(f"invariant 6: {name} is paused by {rollout.get('pausedBy')} but status.message does "
                             f"not say what it waits for: {status.get('message')!r}")
    if stage == "Canary" and rollout.get("pausedReason") == SCALED_TO_ZERO:
        return  # held while the user keeps the model at 0 replicas, and the status says so
    if stage == "Stable" and _condition(status, "Ready").get("reason") == WAITING_FOR_SCALE_UP \
            and "waits: the model is scaled to zero" in (status.get("message") or ""):
        return  # a new revision not started while the model is at 0 (issue 14), and the status says so
    if stage not in ("Canary", "Promoting") and _condition(status, "Ready").get("status") == "True":
        return
    raise AssertionError(f"invariant 6: {name} has not ended: stage {stage}, phase {status.get('phase')}, "
                         f"message {status.get('message')!r}, pausedReason {rollout.get('pausedReason')!r}")


def invariant_never_ready_while_crashing(cluster: FakeCluster, status: dict, name: str = NAME) -> None:
    """Invariant 7. Ready=True never while a serving pod crash-loops (waiting
    in CrashLoopBackOff, or two restarts with the last < 10 minutes ago, even
    if Ready between crashes)."""
    if _condition(status, "Ready").get("status") != "True":
        return
    for body in cluster.pod_bodies(name):
        if crash_looping(body, cluster.now):
            raise AssertionError(f"invariant 7: Ready=True while pod {body['metadata']['name']} crash-loops")


def invariant_no_shared_objects(cluster: FakeCluster) -> None:
    """Invariant 8. Two ModelDeployments never write the same object: a pass
    never applies to or deletes an object another owner controls."""
    if cluster.foreign_writes:
        raise AssertionError(f"invariant 8: {cluster.foreign_writes[0]}")


def invariant_analysis_passes_only_what_it_can_judge(view: PassView) -> None:
    """(Issue 9 defects 11 and 15.) A metric check records a Pass only for a
    finite answer within its bound: never for +Inf, NaN, no data, several
    series or an unreachable Prometheus (and the status, being JSON, never
    holds a non-finite value: the write would fail)."""
    if view.answer is None or view.answer == PASS:
        return
    before = _rollout(view.before).get("decisions") or []
    for record in _rollout(view.after).get("decisions") or []:
        if record.get("metric") == METRIC["name"] and record.get("verdict") == "Pass" and record not in before:
            raise AssertionError(f"invariant (analysis): Prometheus answered {view.answer!r} and the check recorded "
                                 f"a Pass: {record}")


def invariant_no_client_traffic_before_pre_rollout_checks(cluster: FakeCluster, view: PassView,
                                                          oracle: Oracle) -> None:
    """Invariant 12 (issue 12 item 4). No client traffic reaches a canary
    before its PreRollout checks passed: when a pass first sends a canary
    revision R any client request (route weight, mirrored copies, the header
    rule) ever, every PreRollout check of the spec at that pass has a Job of
    R that completed."""
    revision = view.canary_revision_after
    if revision is None or revision in oracle.exposed:
        return
    mirror, _ = cluster.route_mirror(NAME)
    headers = cluster.route_header_backend(NAME) == f"{NAME}-canary"
    # With the replicas provider a ready canary pod behind the client Service
    # serves clients: that exposes the revision as much as a route's weight.
    served = any(pod.labels.get(ROLE) == "canary" and pod.labels.get(REVISION) == revision and cluster.ready(pod)
                 for pod in cluster.selected_pods(NAME))
    if not (view.share_after or mirror or headers or served):
        return
    oracle.exposed.add(revision)
    if view.spec is None or revision_of(view.raw) != revision:
        return
    missing = [check.name for check in view.spec.rollout.checks
               if check.at == "PreRollout" and (revision, check.name) not in oracle.passed_checks]
    if missing:
        raise AssertionError(f"invariant 12: canary revision {revision} gets client traffic (weight "
                             f"{view.share_after}%, mirror {mirror}%, header rule {headers}) before its PreRollout "
                             f"checks {missing} passed")


def invariant_failed_check_never_promotes(view: PassView, oracle: Oracle) -> None:
    """Invariant 13 (issue 12 item 4). A canary whose running check's Job
    failed (or ran past its deadline) is never promoted, not even by the
    promote annotation; only a Recreate or the spec set back to it as the
    stable revision makes it stable."""
    rollout, before = _rollout(view.after), _rollout(view.before)
    after_stable = ((view.after or {}).get("stable") or {}).get("revision")
    entering = None
    if rollout.get("stage") == "Promoting" and before.get("stage") != "Promoting":
        entering = rollout.get("revision")
    elif after_stable is not None and after_stable != oracle.known_stable and before.get("stage") != "Promoting":
        entering = after_stable
    if entering is None or entering not in oracle.check_failed or view.recreate:
        return
    raise AssertionError(f"invariant 13: revision {entering} was promoted although {oracle.check_failed[entering]}")


def invariant_requests_act_only_when_meant(view: PassView) -> None:
    """(Issue 9 defect 9.) The abort annotation rolls back only when its value
    is "true" or the canary's revision."""
    after = _rollout(view.after)
    if after.get("stage") == "RolledBack" and _rollout(view.before).get("stage") != "RolledBack" and \
            ABORT in (after.get("message") or ""):
        value = view.annotations.get(ABORT)
        if value not in ("true", after.get("revision")):
            raise AssertionError(f"invariant (requests): {ABORT}={value!r} rolled back {after.get('revision')}")


# --- the state machine --------------------------------------------------------------------


class RolloutSafety(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cluster = FakeCluster(capacity=40)
        self.operator = Operator(self.cluster, TABLE)
        self.spec = SpecState()
        self.oracle = Oracle()
        self.snapshots: collections.deque = collections.deque(maxlen=6)
        self.provider_at_pass = "replicas"
        self.neighbour: str | None = None
        self.last_steps = None
        self.failed = False
        self.quiet: dict[str, tuple] = {}  # model -> (its inputs, requeue due) after a pass that wrote nothing
        self._parsed: tuple = (None, None)  # (raw spec, parsed) of the last pass
        self.decided: dict | None = None  # the status the last fresh pass meant to write, when that write was lost
        # A revision the oracle barred for an abort annotation no completed
        # pass has read yet: a new value the user writes over it withdraws it.
        self.unread_abort: str | None = None

    # -- set-up ------------------------------------------------------------------
    # The neighbour comes first in one run of four: named fraud-canary or
    # fraud-stable it then holds fraud's role Service, fraud stalls with
    # NameConflict for the whole run, and no compound rule can line up a canary
    # (with st.booleans() a third of all runs could not reach defects 6-15).
    @initialize(neighbour=st.sampled_from(["fraud-canary", "fraud-stable", "fraud-x"]),
                neighbour_first=st.sampled_from([False, False, False, True]))
    def create_models(self, neighbour: str, neighbour_first: bool) -> None:
        other = {"model": {"uri": "s3://models/other/n1", "version": "n1", "format": "sklearn"}, "replicas": 1}
        if neighbour_first:
            self.cluster.create_model(neighbour, other)
            self._neighbour_pass(neighbour)
        self.cluster.create_model(NAME, self.spec.raw())
        if not neighbour_first:
            self.cluster.create_model(neighbour, other)
        self.neighbour = neighbour

    # -- spec edits ----------------------------------------------------------------
    def _edit(self, **changes) -> None:
        self.spec = replace(self.spec, **changes)
        raw = self.spec.raw()
        self.cluster.edit_spec(NAME, raw)
        revision = revision_of(raw)
        if revision is not None:  # a valid spec naming another revision: the user moved away
            for barred in [r for r in self.oracle.barred if r != revision]:
                del self.oracle.barred[barred]
            for failed in [r for r in self.oracle.check_failed if r != revision]:
                del self.oracle.check_failed[failed]

    @rule(version=st.sampled_from(["v1", "v2", "v3"]))
    def edit_version(self, version: str) -> None:
        self._edit(version=version)

    @rule(image=st.sampled_from([None, "registry.example.com/mlserver:1.7.2"]))
    def edit_image(self, image) -> None:
        self._edit(image=image)

    @rule(replicas=st.integers(0, 4))
    def edit_replicas(self, replicas: int) -> None:
        self._edit(replicas=replicas, autoscaling=None)

    @rule(min_replicas=st.integers(1, 3), extra=st.integers(0, 3), keda=st.booleans())
    def edit_autoscaling(self, min_replicas: int, extra: int, keda: bool = False) -> None:
        self._edit(autoscaling=(min_replicas, min_replicas + extra), replicas=None, keda=keda)

    @rule(extra=st.integers(1, 3))
    def edit_keda_to_zero(self, extra: int) -> None:
        """Issue 14: KEDA with minReplicas 0 (capacity mode Replace refuses
        it, a spec held as invalid)."""
        self._edit(autoscaling=(0, extra), replicas=None, keda=True)

    @rule(how=st.sampled_from(["reserved-env", "unknown-format"]))
    def break_spec(self, how: str) -> None:
        self._edit(invalid=how)

    @rule()
    def fix_spec(self) -> None:
        self._edit(invalid=None)

    @rule(provider=st.sampled_from(sorted(PROVIDERS)))
    def switch_provider(self, provider: str) -> None:
        self._edit(provider=provider)

    @rule(steps=st.sampled_from(sorted(STEP_PLANS)))
    def edit_steps(self, steps: str) -> None:
        self._edit(steps=steps)

    @rule(on=st.booleans())
    def set_canary_headers(self, on: bool) -> None:
        self._edit(headers=on)

    @rule(strategy=st.sampled_from(["Canary", "Recreate", "BlueGreen"]), auto_promote=st.booleans())
    def set_strategy(self, strategy: str, auto_promote: bool = False) -> None:
        self._edit(strategy=strategy, auto_promote=auto_promote)

    @rule(checks=st.sampled_from(list(CHECK_PLANS)))
    def set_checks(self, checks) -> None:
        self._edit(checks=checks)

    @rule(outcome=st.sampled_from(JOB_OUTCOMES))
    def check_job_finishes(self, outcome: str) -> None:
        """The newest running check Job ends (its pod succeeded, failed, or it
        ran out of time), as the control plane's Job controller ends it."""
        job = self.cluster.finish_job(outcome)
        if job is None:
            return
        labels = job["metadata"]["labels"]
        revision, check = labels.get(REVISION), labels.get("modeldeploy.io/check")
        if outcome == "Complete":
            self.oracle.passed_checks.add((revision, check))
            return
        running = _rollout(self._status()).get("check") or {}
        if running.get("job") == job["metadata"]["name"] and _in_flight(self._status()) == revision:
            self.oracle.check_failed.setdefault(revision, f"its check {check}'s Job {running['job']} ended {outcome}")

    @rule(capacity=st.sampled_from(sorted(CAPACITY)))
    def set_capacity(self, capacity: str) -> None:
        self._edit(capacity=capacity)

    @rule(on_inconclusive=st.sampled_from([None, "Pause", "Rollback", "Continue"]))
    def set_analysis(self, on_inconclusive) -> None:
        self._edit(analysis=on_inconclusive)

    @rule(version=st.sampled_from([None, "v1", "v2", "v3"]))
    def approve(self, version) -> None:
        self._edit(approved=version)

    # -- requests ------------------------------------------------------------------
    def _request_value(self, value: str) -> str:
        status = self.cluster.models[NAME]["status"]
        if value == "canary-revision":
            return _rollout(status).get("revision") or "none"
        if value == "stable-revision":
            return ((status or {}).get("stable") or {}).get("revision") or "none"
        return value

    @rule(value=st.sampled_from(["true", "false", "canary-revision", "stable-revision"]))
    def annotate_promote(self, value: str) -> None:
        self.oracle.promote_target = _in_flight(self.cluster.models[NAME]["status"]) if value == "true" else None
        self.cluster.annotate(NAME, PROMOTE, self._request_value(value))

    @rule(value=st.sampled_from(["true", "false", "canary-revision", "stable-revision"]))
    def annotate_abort(self, value: str) -> None:
        resolved = self._request_value(value)
        in_flight = _in_flight(self.cluster.models[NAME]["status"])
        if self.unread_abort is not None:  # overwritten before the operator read it
            self.oracle.barred.pop(self.unread_abort, None)
            self.unread_abort = None
        if in_flight is not None and resolved in ("true", in_flight) and in_flight not in self.oracle.barred:
            self.oracle.barred[in_flight] = "aborted by the user"
            self.unread_abort = in_flight
        self.cluster.annotate(NAME, ABORT, resolved)

    # -- the world -----------------------------------------------------------------
    @rule(version=st.sampled_from(["v1", "v2", "v3"]), behaviour=st.sampled_from(BEHAVIOURS))
    def pods_behave(self, version: str, behaviour: str) -> None:
        self.cluster.behave(version, behaviour)
        self.cluster.sync()  # the Deployment controller sees the pods change at once

    @rule(pods=st.sampled_from([3, 5, 8, 40]))
    def node_capacity(self, pods: int) -> None:
        self.cluster.capacity = pods

    @rule(answer=st.sampled_from(ANSWERS))
    def prometheus_answers(self, answer: str) -> None:
        self.cluster.prometheus.answer = answer

    @rule(replicas=st.integers(0, 6))  # 0: no request at all (KEDA scales to zero at minReplicas 0)
    def load_asks_hpa_for(self, replicas: int) -> None:
        self.cluster.hpa_wants = replicas

    @rule()
    def controllers_progress(self) -> None:
        self.cluster.later(1)
        self.cluster.sync()
        self.cluster.hpa_sync()
        self.cluster.sync()
        self._between_passes()

    @rule(seconds=st.sampled_from([5, 30, 120]))
    def operator_down_while_time_passes(self, seconds: int) -> None:
        self.cluster.later(seconds)
        self.cluster.sync()
        self._between_passes()

    @rule(seconds=st.sampled_from([5, 15, 60]))
    def time_passes(self, seconds: int) -> None:
        """The cluster progresses and the operator passes every 5 s (its requeue and watch events)."""
        self._ticks(max(5, seconds))

    def _ticks(self, seconds: int, until=None) -> bool:
        """Up to `seconds` of time_passes, 5 s at a time, stopping early once `until()` holds."""
        for _ in range(seconds // 5):
            if until is not None and until():
                return True
            self.cluster.later(5)
            self.cluster.sync()
            self.cluster.hpa_sync()
            self.cluster.sync()
            self._between_passes()
            self._pass()
            if self.neighbour is not None:
                self._pass_when_due(self.neighbour)  # the neighbour, whose spec never changes, as the operator would
        return until is not None and until()

    # -- the operator --------------------------------------------------------------
    @rule()
    def reconcile(self) -> None:
        self._pass()

    @rule()
    def reconcile_before_controllers_react(self) -> None:
        """A pass, and the next one comes (a watch event, a requeue) before the
        Deployment controllers have acted on its writes: the watch cache holds
        the pass's own apply responses (new template, old status)."""
        self._pass(react=False)

    @rule()
    def reconcile_neighbour(self) -> None:
        self._neighbour_pass(self.neighbour)

    @rule(passes_ago=st.integers(1, 5))
    def restart_with_stale_cache(self, passes_ago: int) -> None:
        if len(self.snapshots) >= passes_ago:
            self._pass(cache=self.snapshots[-passes_ago])

    @rule(code=st.sampled_from([409, 500]))
    def status_write_fails(self, code: int) -> None:
        self.cluster.status_failure = code
        self._pass()
        self.cluster.status_failure = None

    @rule()
    def api_server_refuses_this_version(self) -> None:
        self.cluster.refused_versions.add(self.spec.version)
        self._pass()

    # -- compound situations ---------------------------------------------------------
    # Uniform rule choice rarely lines these up: each is a sequence of the
    # actions above (what a user, the cluster and time do), aimed at an issue 9
    # defect that needs a canary already taking traffic (6, 7, 10, 11, 15).

    def _status(self) -> dict:
        return self.cluster.models[NAME].get("status") or {}

    def _taking_traffic(self) -> bool:
        """The spec's revision is the canary in flight, with weight."""
        rollout = _rollout(self._status())
        return rollout.get("stage") == "Canary" and (rollout.get("weight") or 0) > 0 and \
            rollout.get("revision") == revision_of(self.spec.raw())

    def _promoting(self) -> bool:
        return _rollout(self._status()).get("stage") == "Promoting"

    def _canary_version(self) -> str | None:
        obj = self.cluster.objects.get(("Deployment", f"{NAME}-canary"))
        if obj is None:
            return None
        return ((obj.body["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(MODEL_VERSION)

    def _new_version(self) -> str | None:
        """A version whose revision is neither stable's nor the spec's now, and
        that the API server takes: editing to it starts a new canary."""
        status = self._status()
        taken = {((status.get("stable") or {}).get("revision")), revision_of(self.spec.raw())}
        for version in ("v1", "v2", "v3"):
            if version not in self.cluster.refused_versions and \
                    revision_of(replace(self.spec, version=version).raw()) not in taken:
                return version
        return None

    def _canary_takes_traffic(self) -> bool:
        """Line up a canary that takes traffic, by what a user and the cluster
        do: a valid spec with replicas, the Canary strategy and a step list
        that sets a weight; a new version when none is in flight (or the spec
        names stable's, a rolled-back or a refused one); room on the node,
        the canary's pods ready, Prometheus answering; then time passes (up to
        a minute) until the canary takes weight."""
        changes = self._runnable()
        if self.spec.strategy != "Canary":
            changes["strategy"] = "Canary"
        if self.spec.steps == "no-steps":
            changes["steps"] = "one-step"
        if changes:
            self._edit(**changes)
        if not self._status():
            self._pass()  # the first revision becomes stable
        rollout = _rollout(self._status())
        current = revision_of(self.spec.raw())
        if current == ((self._status().get("stable") or {}).get("revision")) or \
                (rollout.get("stage") == "RolledBack" and rollout.get("revision") == current) or \
                self.spec.version in self.cluster.refused_versions:
            if self._ship_a_new_version() is None:
                return False
        else:
            self._healthy_world(self.spec.version)
        return self._ticks(60, until=self._taking_traffic)

    def _runnable(self, **changes) -> dict:
        """`changes` plus what makes the spec one a canary can run on: valid,
        with replicas (none when it has some, or autoscaling)."""
        if self.spec.invalid:
            changes["invalid"] = None
        if self.spec.autoscaling is None and not self.spec.replicas:
            changes["replicas"] = 2
        if self.spec.autoscaling is not None and self.spec.autoscaling[0] == 0:
            changes["autoscaling"] = (1, self.spec.autoscaling[1])  # at zero a new revision waits (issue 14)
        return changes

    def _ship_a_new_version(self) -> str | None:
        """The user names a version neither stable nor in flight (None: none
        left), in a world that lets it through: its pods ready, room on the
        node, Prometheus answering."""
        version = self._new_version()
        if version is not None:
            self._edit(version=version)
            self._healthy_world(version)
        return version

    def _healthy_world(self, version: str) -> None:
        if self.cluster.capacity < 8:
            self.cluster.capacity = 40
        self.cluster.behave(version, READY)
        self.cluster.prometheus.answer = PASS
        self.cluster.sync()

    @rule(answer=st.one_of(st.sampled_from([INF, NAN]), st.sampled_from(ANSWERS)), rounds=st.integers(1, 3),
          on_inconclusive=st.sampled_from(["Pause", "Rollback", "Continue"]), min_samples=st.sampled_from([0, 100]))
    def canary_gets_traffic_then_prometheus_answers(self, answer: str, rounds: int, on_inconclusive: str,
                                                    min_samples: int) -> None:
        """Defect 11: Prometheus answers +Inf or NaN (about half the time;
        else anything, the samples query too) while the canary takes traffic;
        analysis rounds pass. The user turns analysis on if it was off (`on_inconclusive`)
        and sets minSamples (0: no samples query)."""
        if self.spec.analysis is None or self.spec.min_samples != min_samples:
            self._edit(analysis=self.spec.analysis or on_inconclusive, min_samples=min_samples)
        if not self._canary_takes_traffic():
            return
        self.cluster.prometheus.answer = answer
        self._ticks(rounds * ANALYSIS_INTERVAL)

    @rule(value=st.sampled_from(["true", "canary-revision"]), crash_after=st.sampled_from([0, 5]),
          then_wait=st.booleans())
    def promote_then_promoted_pods_crash(self, value: str, crash_after: int, then_wait: bool) -> None:
        """Defect 7: the user promotes a healthy canary; once promotion has
        started, pods of the promoted revision crash-loop (both roles).
        `then_wait`: nobody acts for the bound, then invariant 6."""
        if not self._canary_takes_traffic():
            return
        version = self._canary_version()
        self.annotate_promote(value)
        if version is None or not self._ticks(10, until=self._promoting):
            return
        self._ticks(crash_after)
        self.cluster.behave(version, CRASH_LOOP)
        self.cluster.sync()
        self._ticks(30)
        if then_wait:
            self._nobody_acts_for_the_bound()

    @rule(provider=st.sampled_from(sorted(PROVIDERS)), auto_promote=st.booleans(),
          then=st.sampled_from(["approve", "promote", "abort", "crash", "wait"]))
    def blue_green_rollout(self, provider: str, auto_promote: bool, then: str) -> None:
        """Issue 12: a blue-green rollout lined up by what a user and the
        cluster do (strategy BlueGreen with mode Surge, a new version, its
        pods ready: the preview waits for approval, or with autoPromote
        switches); then the user approves, promotes by annotation or aborts
        (within scaleDownDelay once switched), or the new pods crash-loop, or
        nobody acts."""
        changes = self._runnable(strategy="BlueGreen", auto_promote=auto_promote, provider=provider)
        if self.spec.capacity != "Surge":
            changes["capacity"] = "Surge"
        if self.spec.checks == "step-1":  # BlueGreen has no steps of the user's: refused
            changes["checks"] = None
        self._edit(**changes)
        if not self._status():
            self._pass()
        version = self._ship_a_new_version()
        if version is None:
            return
        switched = lambda: (_rollout(self._status()).get("weight") or 0) == 100  # noqa: E731
        paused = lambda: bool(_rollout(self._status()).get("pausedReason")) or switched()  # noqa: E731
        if not self._ticks(60, until=paused):
            return
        if then == "approve":
            self.approve(version)
        elif then == "promote":
            self.annotate_promote("true")
        elif then == "abort":
            self._ticks(15, until=switched)
            self.annotate_abort("true")
        elif then == "crash":
            self.cluster.behave(version, CRASH_LOOP)
            self.cluster.sync()
        self._ticks(30)
        if then == "wait":
            self._nobody_acts_for_the_bound()

    @rule(provider=st.sampled_from([None, "gatewayAPI", "istio"]))
    def supersede_canary_while_its_pods_are_ready(self, provider) -> None:
        """Defect 6: while a canary's pods are ready and take traffic, the user
        names a new version; the pass that re-templates the canary Deployment
        is followed by another before the Deployment controller has replaced
        the old pods (its readyReplicas still counts them). `provider`: the
        user switches the traffic provider first (None: keep it)."""
        if provider is not None:
            self._edit(provider=provider)
        if not self._canary_takes_traffic():
            return
        version = self._new_version()
        if version is None:
            return
        self._edit(version=version)
        self._pass(react=False)
        self._pass()
        self._ticks(10)

    @rule(checks=st.sampled_from([c for c in CHECK_PLANS if c]), provider=st.sampled_from(["gatewayAPI", "istio"]),
          outcome=st.sampled_from(JOB_OUTCOMES), promote=st.booleans(), then_wait=st.booleans())
    def canary_runs_a_check_that_ends(self, checks: str, provider: str, outcome: str, promote: bool,
                                      then_wait: bool) -> None:
        """Issue 12 item 4: a new canary with smoke checks, on a weighted
        provider (headers on or off as they were), pods ready; once a check
        runs its Job ends with `outcome`, the user perhaps promoting at once.
        `then_wait`: nobody acts for the bound, then invariant 6."""
        self._edit(checks=checks, provider=provider)
        changes = self._runnable()
        if self.spec.strategy != "Canary":
            changes["strategy"] = "Canary"
        if self.spec.steps in ("no-steps", "shadow") and checks == "step-1":
            changes["steps"] = "one-step"
        if changes:
            self._edit(**changes)
        version = self._ship_a_new_version()
        if version is None:
            return
        if not self._ticks(60, until=lambda: bool(_rollout(self._status()).get("check"))):
            return
        self.check_job_finishes(outcome)
        if promote:
            self.annotate_promote("true")
        self._ticks(15)
        if then_wait:
            self._nobody_acts_for_the_bound()

    @rule(code=st.sampled_from([409, 500]), value=st.sampled_from(["true", "canary-revision"]),
          then_wait=st.booleans())
    def abort_with_a_lost_status_write(self, code: int, value: str, then_wait: bool) -> None:
        """Defect 10: the user aborts a canary that takes traffic, and the
        status write of the pass that carries out the abort is lost.
        `then_wait`: nobody acts for the bound, then invariant 6."""
        if not self._canary_takes_traffic():
            return
        self.annotate_abort(value)
        self.status_write_fails(code)
        self._ticks(10)
        if then_wait:
            self._nobody_acts_for_the_bound()

    @rule(answer=st.sampled_from([UNREACHABLE, SEVERAL_SERIES]), rounds=st.integers(1, ERROR_LIMIT + 2),
          then_wait=st.booleans())
    def prometheus_stays_unreachable_for(self, answer: str, rounds: int, then_wait: bool) -> None:
        """Defect 15: while the canary takes traffic, analysis never answers
        (Prometheus unreachable, or several series) for `rounds` intervals;
        more than consecutiveErrorLimit in a row must end in rollback (invariant
        6, at the end of the run or after `then_wait`). The user turns analysis on
        (onInconclusive: Pause, the case that used to hold forever) if it was off.
        `then_wait`: nobody acts for the bound (Prometheus still silent), then invariant 6."""
        if self.spec.analysis is None:
            self._edit(analysis="Pause")
        if not self._canary_takes_traffic():
            return
        self.cluster.prometheus.answer = answer
        self._ticks(rounds * ANALYSIS_INTERVAL)
        if then_wait:
            self._nobody_acts_for_the_bound()

    # -- passes and the checks around them ----------------------------------------------
    def _stable_ready(self) -> int:
        return ready_pods(self.cluster, NAME, "stable")

    def _stable_replicas(self) -> int | None:
        live = self.cluster.objects.get(("Deployment", f"{NAME}-stable"))
        return live.body["spec"].get("replicas", 1) if live is not None else None

    def _desired(self, spec) -> int | None:
        if spec is None:
            return None
        if spec.autoscaling is None:
            return spec.fixed_replicas
        live = self.cluster.objects.get(("Deployment", f"{NAME}-stable"))
        current = live.body["spec"].get("replicas", 1) if live is not None else 0
        return max(spec.autoscaling.min_replicas, current)

    def _replace_budget(self, spec) -> Budget | None:
        """Capacity mode Replace's budget as a pass sees it now (under
        autoscaling: around the total the HPA asked for)."""
        if spec is None:
            return None
        counts = {role: SimpleNamespace(replicas=obj.body["spec"].get("replicas", 1))
                  for role in ("stable", "canary")
                  if (obj := self.cluster.objects.get(("Deployment", f"{NAME}-{role}"))) is not None}
        return _budget(spec, SimpleNamespace(stable=counts.get("stable"), canary=counts.get("canary")))

    def _templates(self) -> dict[str, str | None]:
        """The revision each of the primary model's Deployments templates now."""
        return {role: obj.body["spec"]["template"]["metadata"]["labels"].get(REVISION)
                for role in ("stable", "canary")
                if (obj := self.cluster.objects.get(("Deployment", f"{NAME}-{role}"))) is not None}

    def _model_pods(self, before: dict[str, str | None], believed: frozenset[str] = frozenset()) -> tuple[int, int]:
        """The primary model's pods (any role or revision), and the ready ones
        its Deployments keep: of each Deployment's template before the pass
        (`before`) or now. Pods of a template replaced before the pass are on
        their way out whatever it writes (a Deployment's own rollout, set off
        by an earlier pass); those of a template the pass replaces serve
        until their Deployment's rolling update takes them, within its budget.
        `believed`: pods a stale cache showed ready; one that has stopped
        being ready since, unseen, counts as the pass believed it (no pass
        can see what its cache has not brought; the operator never makes a
        pod unready, it only removes pods)."""
        pods = [p for p in self.cluster.pods.values() if p.labels.get("modeldeploy.io/name") == NAME]
        now = self._templates()
        kept = sum(1 for p in pods if (self.cluster.ready(p) or p.name in believed)
                   and p.labels.get(REVISION) in {before.get(p.labels.get(ROLE)), now.get(p.labels.get(ROLE))})
        return len(pods), kept

    def _recreate(self, spec) -> bool:
        live = self.cluster.objects.get(("Deployment", f"{NAME}-stable"))
        live_recreate = live is not None and (live.body["spec"].get("strategy") or {}).get("type") == "Recreate"
        return live_recreate or (spec is not None and spec.rollout.strategy == "Recreate")

    def _pass(self, cache=None, react: bool = True, fresh=None):
        """One pass of the primary model and the checks around it. `cache`: a
        stale watch cache (an earlier snapshot); `fresh`: the current one,
        already taken; `react`: the Deployment controllers act on its writes
        at once (else the next pass comes first). Returns the PassResult."""
        cluster = self.cluster
        md = cluster.models[NAME]
        # The fake replaces spec and status wholesale on every write (never
        # edits them in place), so the objects themselves are the snapshots.
        raw = md["spec"]
        if self._parsed[0] is not raw:
            self._parsed = (raw, parsed(raw))
        spec = self._parsed[1]
        before = md.get("status") or {}
        annotations = dict(md["metadata"].get("annotations") or {})
        # Ready stable pods the Deployment keeps whatever this pass writes:
        # beyond the replicas an earlier pass asked for, when the controllers
        # have not acted on that yet, pods are on their way out already (that
        # pass was judged on what it wrote).
        ready_before = self._stable_ready()
        if (asked := self._stable_replicas()) is not None:
            ready_before = min(ready_before, asked)
        templates_before = self._templates()
        pods_before, all_ready_before = self._model_pods(templates_before)
        budget_before = self._replace_budget(spec)
        desired = self._desired(spec)
        recreate_before = self._recreate(spec)
        share_before = route_share(cluster, NAME)
        mirror_before = cluster.route_mirror(NAME)[0]
        headers_before = cluster.route_header_backend(NAME)
        canary_before = canary_deployment_revision(cluster, NAME)
        if cache is None:
            cache = fresh if fresh is not None else self.operator.snapshot(NAME)
            self.snapshots.append(cache)
            stale = False
        else:
            stale = True
        try:
            result = self.operator.reconcile(NAME, cache=cache)
        except Exception:
            self.failed = True
            raise
        if result.completed and ABORT in (result.plan.consume if result.plan is not None else ()):
            # Read (and recorded) by this pass, whatever it did with it. A held
            # pass (invalid spec) reads no request: the user may still take
            # the abort back by overwriting it.
            self.unread_abort = None
        after = md.get("status") or {}
        view = PassView(
            raw=raw, spec=spec, annotations=annotations, before=before, after=after, completed=result.completed,
            stable_ready_before=ready_before, stable_ready_after=0, desired=desired,
            recreate=recreate_before or self._recreate(spec), share_before=share_before,
            share_after=route_share(cluster, NAME), canary_revision_before=canary_before,
            canary_revision_after=canary_deployment_revision(cluster, NAME),
            base=self._base(spec), now=cluster.now, stale=stale,
            answer=cluster.prometheus.answer if result.world is not None and result.world.analysis else None,
            budget=budget_before, pods_before=pods_before,
            ready_before=all_ready_before, mirror_before=mirror_before, headers_before=headers_before)
        self._check(lambda: invariant_stable_only_by_a_legitimate_way(view, self.oracle), 1)
        self._check(lambda: invariant_rolled_back_never_stable(view, self.oracle), 2)
        self._check(lambda: invariant_requests_act_only_when_meant(view), 9)
        self._check(lambda: invariant_analysis_passes_only_what_it_can_judge(view), 11)
        self._check(lambda: invariant_no_client_traffic_before_pre_rollout_checks(cluster, view, self.oracle), 12)
        self._check(lambda: invariant_failed_check_never_promotes(view, self.oracle), 13)
        # What the status says (4, 7) and the weights set (3) are judged after
        # fresh passes: a pass from a stale cache cannot know better, the next
        # fresh one must. Transitions (1, 2, 5, 8) must be safe from any cache.
        # What the operator decided: the status it wrote, or meant to write
        # when the write was lost (the children were written for it); from a
        # stale cache too once that pass wrote (its children and status are
        # what the cluster holds now, whatever a lost write before it meant).
        wrote = result.plan is not None and bool(result.plan.apply or result.plan.prune or
                                                 result.plan.status is not None)
        if not stale or wrote:
            lost = not result.completed and result.plan is not None and result.plan.status is not None
            self.decided = result.plan.status if lost else None
        # A spec the API server refused (422) holds everything as it was: the
        # provider and steps in effect stay those of the last pass that acted,
        # from a stale cache too (it reads the spec as it is, and writes it).
        if result.completed and spec is not None and result.refused is None:
            self.provider_at_pass = spec.traffic.provider
            self.last_steps = effective_steps(spec.rollout)
        if result.completed and not stale:
            self._check(lambda: invariant_never_ready_while_crashing(cluster, after), 7)
            provider = self.provider_at_pass
            if spec is not None and provider != "replicas":
                self._check(lambda: invariant_canary_share_within_ready_capacity(cluster, view, provider, after), 3)
        if react:
            cluster.sync()  # the Deployment controllers react at once
        if result.completed and not stale and react:
            # The status is written after the pass's writes, and says what is
            # carried once they have landed (a scaled-down canary's pods gone).
            self._check(lambda: invariant_status_traffic_is_real(cluster, after), 4)
        view.stable_ready_after = self._stable_ready()
        view.reacted, view.stable_replicas_after = react, self._stable_replicas()
        believed = frozenset(p.name for p in cache.pods if p.ready) if stale else frozenset()
        view.pods_after, view.ready_after = self._model_pods(templates_before, believed)
        self._check(lambda: invariant_capacity_kept(view), 5)
        self._check(lambda: invariant_pods_within_budget(view), 10)
        self._learn(view)
        self._between_passes(reacted=react)
        return result

    def _base(self, spec) -> int | None:
        if spec is None:
            return None
        if spec.autoscaling is None:
            return spec.fixed_replicas
        live = self.cluster.objects.get(("Deployment", f"{NAME}-stable"))
        return max(spec.autoscaling.min_replicas, live.body["spec"].get("replicas", 1) if live is not None else 0)

    def _learn(self, view: PassView) -> None:
        stable = (view.after.get("stable") or {}).get("revision")
        if stable is not None:
            self.oracle.known_stable = stable
        rollout, earlier = _rollout(view.after), _rollout(view.before)
        # Barred when a pass rolls it back, not each time a status still
        # records that rollback: in capacity mode Replace a new revision waits
        # under the record while stable takes its pods back, and the user's
        # move away from the rolled-back revision (which lifts the bar) may
        # come before those passes.
        newly = (earlier.get("stage"), earlier.get("revision")) != ("RolledBack", rollout.get("revision"))
        if rollout.get("stage") == "RolledBack" and rollout.get("revision") and newly:
            self.oracle.barred.setdefault(rollout["revision"], "rolled back")
        if view.completed and PROMOTE not in (self.cluster.models[NAME]["metadata"].get("annotations") or {}):
            self.oracle.promote_target = None

    def _between_passes(self, reacted: bool = True) -> None:
        """Checks that hold at any moment, not only right after a pass; the
        pods behind the Service (3) once the Deployment controllers have acted
        on the last pass's writes (a re-templated canary's old pods are
        replaced by the controller, not by the operator)."""
        self._check(lambda: invariant_no_shared_objects(self.cluster), 8)
        status = self.decided or self.cluster.models[NAME].get("status") or {}
        steps = self.last_steps  # as the operator last acted on them (an invalid spec holds the rollout)
        if self.provider_at_pass == "replicas" and reacted:
            self._check(lambda: invariant_canary_share_within_ready_capacity(
                self.cluster, None, "replicas", status, steps=steps), 3)

    def _neighbour_pass(self, name: str | None, fresh=None):
        if name is None:
            return None
        try:
            result = self.operator.reconcile(name, cache=fresh)
        except Exception:
            self.failed = True
            raise
        self.cluster.sync()
        self._check(lambda: invariant_no_shared_objects(self.cluster), 8)
        return result

    def _check(self, check, number: int | None = None) -> None:
        if ONLY and number not in ONLY:
            return
        try:
            check()
        except AssertionError:
            self.failed = True
            raise

    # -- the operator as it passes by itself, and the end of every run: invariant 6 -----
    def _pass_when_due(self, name: str) -> None:
        """A pass of `name` if the real operator would make one now: anything
        it watches changed since its last pass, or that pass wrote something,
        or its requeue (at the latest the resync) is due. Otherwise the pass
        is left out: plan() is pure, and with the very same inputs it would
        again write nothing (only the clock differs, and a plan that needs the
        clock asks for a requeue)."""
        fresh = self.operator.snapshot(name)
        inputs = self._inputs(name, fresh)
        held = self.quiet.pop(name, None)
        if held is not None and held[0] == inputs and self.cluster.now < held[1]:
            self.quiet[name] = held
            self._between_passes()
            return
        result = self._pass(fresh=fresh) if name == NAME else self._neighbour_pass(name, fresh=fresh)
        step = result.plan
        if result.completed and step.queries is None and not (
                step.handover or step.apply or step.prune or step.status is not None or step.consume or step.events
                or step.scale is not None):
            wait = RESYNC_SECONDS if step.requeue_after is None else min(step.requeue_after, RESYNC_SECONDS)
            self.quiet[name] = (inputs, self.cluster.now + timedelta(seconds=wait))

    def _inputs(self, name: str, snapshot) -> tuple:
        """Everything a pass of `name` reads but the clock: the model, its
        watch cache (children and neighbours by resourceVersion, pods as
        summarised) and Prometheus' answer."""
        meta = self.cluster.models[name]["metadata"]

        def versions(objects: dict) -> list:
            return sorted((key, body["metadata"].get("resourceVersion")) for key, body in objects.items())

        return (meta["resourceVersion"], versions(snapshot.children), versions(snapshot.neighbours), snapshot.pods,
                self.cluster.prometheus.answer)

    def _bound(self) -> int:
        spec = parsed(self.cluster.models[NAME]["spec"])
        pauses = 120 if spec is None else sum(
            60 if s.pause is not None and s.pause.duration is None else
            (int(s.pause.duration.rstrip("s")) if s.pause is not None else 0) for s in effective_steps(spec.rollout))
        analysis = ANALYSIS_INTERVAL * (FAILURE_LIMIT + ERROR_LIMIT + 3)
        # A pod still loading has max(deadline, loadTimeout) from its
        # scheduling (README, GPUs and big models): the canary's pods, then
        # stable's new ones while promoting.
        load = 600 if spec is None else load_budget(spec, resolve_runtime(spec, TABLE))
        return 3 * DEADLINE + 2 * max(DEADLINE, load) + pauses + analysis + 60

    def _nobody_acts_for_the_bound(self) -> None:
        """Time passes under the same world for the bound, 15 s at a time, the
        operator passing as the real one does: on a change of anything it
        watches, when its requeue falls due, and on the resync
        (_pass_when_due); then one more pass, and invariant 6 for both models."""
        self.cluster.status_failure = None
        elapsed = 0
        while elapsed < self._bound():
            self.cluster.later(15)
            elapsed += 15
            self.cluster.sync()
            self.cluster.hpa_sync()
            self.cluster.sync()
            self._pass_when_due(NAME)
            self._pass_when_due(self.neighbour)
        self._pass()
        spec = parsed(self.cluster.models[NAME]["spec"])
        silent = spec is not None and spec.rollout.analysis is not None and \
            self.cluster.prometheus.answer in (UNREACHABLE, SEVERAL_SERIES)
        self._check(lambda: invariant_rollout_ends(self.cluster.models[NAME]["status"], silent=silent), 6)
        self._check(lambda: invariant_rollout_ends(self.cluster.models[self.neighbour]["status"], self.neighbour), 6)

    def teardown(self) -> None:
        if self.failed or self.neighbour is None:
            return
        self._nobody_acts_for_the_bound()


RolloutSafety.TestCase.settings = settings.get_profile("rollout-safety")
TestRolloutSafety = RolloutSafety.TestCase
