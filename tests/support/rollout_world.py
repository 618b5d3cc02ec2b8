"""A tiny simulated cluster for the pure rollout machine.

It stores the status between passes (so every pass starts from what status
holds, as after an operator restart), renders the Deployments a Decision asks
for, and lets a test decide when pods become ready, crash, or time passes.
Nothing here talks to a cluster.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from modeldeploy.api import parse_spec
from modeldeploy.builders import compute_revision
from modeldeploy.rollout import AnalysisResults, Decision, Inputs, base_replicas, decide, plan_analysis, read_state
from modeldeploy.runtimes import load_runtime_table
from modeldeploy.status import ContainerWaiting, Observed, ObservedDeployment, PodSummary, derive_status
from modeldeploy.status.observed import DeploymentCondition, JobSummary
from modeldeploy.builders.job import CHECK
from modeldeploy.traffic import Weights, achieved_weights

TABLE = load_runtime_table()
START = datetime(2025, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


def spec_for(version: str, **extra):
    raw = {"model": {"uri": f"s3://models/fraud/{version}", "version": version, "format": "sklearn"}, **extra}
    return parse_spec(raw, known_formats=TABLE.known_formats, name="fraud")


@dataclass
class Role:
    revision: str
    version: str
    replicas: int
    ready: int = 0
    generation: int = 1
    restarts: int = 0
    crashing: bool = False
    unschedulable: str = ""  # the scheduler's message for the pods that are not ready
    # The pods that are not ready were scheduled then and are loading the
    # model (not started), with this budget (their startup probe's).
    loading_since: datetime | None = None
    load_timeout: int | None = None
    ready_since: datetime | None = None  # when the ready pods turned Ready (None: unknown)

    def observed(self) -> ObservedDeployment:
        return ObservedDeployment(
            revision=self.revision, model_version=self.version, generation=self.generation,
            observed_generation=self.generation, replicas=self.replicas, status_replicas=self.replicas,
            updated_replicas=self.replicas, ready_replicas=self.ready, available_replicas=self.ready,
        )

    def pods(self, role: str) -> list[PodSummary]:
        waiting = (ContainerWaiting("model-server", "CrashLoopBackOff"),) if self.crashing else ()
        return [
            PodSummary(name=f"fraud-{role}-{i}", role=role, revision=self.revision, ready=i < self.ready,
                       restart_count=self.restarts if i == 0 else 0, waiting=waiting if i == 0 else (),
                       unschedulable=self.unschedulable if i >= self.ready else "",
                       scheduled_at=self.loading_since if i >= self.ready else None,
                       started=i < self.ready or self.loading_since is None,
                       load_timeout_seconds=self.load_timeout,
                       ready_since=self.ready_since if i < self.ready else None)
            for i in range(self.replicas)
        ]


@dataclass
class World:
    spec: object
    now: datetime = START
    status: dict | None = None
    stable: Role | None = None
    canary: Role | None = None
    route: Weights | None = None  # what the route holds (weighted providers)
    mirror: int = 0  # percent of requests the route copies to the canary
    # False: a Gateway API without RequestMirror.percent (the API server
    # drops the field, so a mirror written with it copies everything).
    keeps_mirror_percent: bool = True
    headers_to_canary: bool = False  # where the route sends requests with the canary headers
    client_role: str | None = None  # the one role the client Service selects (BlueGreen, replicas provider)
    annotations: dict = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    analysis_answer: object = None  # callable(plan) -> AnalysisResults
    # Per pass: (weights decided, canary pods ready when deciding, base replicas when deciding).
    passes: list[tuple[Weights, int, int]] = field(default_factory=list)
    slots: object = None  # rollout.admission.CanarySlots: --max-concurrent-canaries
    # Smoke-check Jobs (rollout.checks) by name, as the Job controller leaves
    # them; every Job a decision asked for, in the order they were created.
    jobs: dict = field(default_factory=dict)
    created_jobs: list = field(default_factory=list)

    @property
    def revision(self) -> str:
        return compute_revision(self.spec, TABLE)

    def observed(self) -> Observed:
        pods = (*(self.stable.pods("stable") if self.stable else ()), *(self.canary.pods("canary") if self.canary else ()))
        return Observed(
            stable=self.stable.observed() if self.stable else None,
            canary=self.canary.observed() if self.canary else None,
            pods=tuple(pods),
            jobs=tuple(self.jobs.values()),
        )

    def seen_weights(self) -> Weights | None:
        if self.spec.traffic.provider == "replicas":
            stable = self.stable.ready if self.stable and self.client_role != "canary" else 0
            return achieved_weights(stable, self.canary.ready if self.canary and self.client_role != "stable" else 0)
        return self.route

    def inputs(self) -> Inputs:
        return Inputs(
            name="fraud", namespace="ml", spec=self.spec, revision=self.revision, state=read_state(self.status),
            observed=self.observed(), weights=self.seen_weights(), now=self.now, annotations=dict(self.annotations),
            slots=self.slots, mirror=self.mirror if self.spec.traffic.provider != "replicas" else None,
        )

    def reconcile(self) -> Decision:
        inputs = self.inputs()
        plan = plan_analysis(inputs)
        if plan is not None:
            answer = self.analysis_answer(plan) if self.analysis_answer else AnalysisResults()
            inputs = replace(inputs, analysis=answer)
        ready_before = self.canary.ready if self.canary and self.canary.revision == self.revision else 0
        decision = decide(inputs)
        self.passes.append((decision.weights, ready_before, base_replicas(self.spec, inputs.observed.stable)))
        self.status = derive_status(
            name="fraud", namespace="ml", generation=1, spec=self.spec, revision=self.revision,
            observed=self.observed(), previous=self.status, now=self.now, rollout=decision.report,
        )
        self._apply(decision)
        self.decisions.append(decision)
        return decision

    def _apply(self, decision: Decision) -> None:
        check = decision.state.check
        if check is not None and decision.state.stage.value in ("Canary", "Promoting") and check.job not in self.jobs:
            self.jobs[check.job] = JobSummary(name=check.job, labels={CHECK: check.name}, active=1,
                                              created_at=self.now, start_time=self.now)
            self.created_jobs.append(check.job)
        for key in decision.remove_annotations:
            self.annotations.pop(key, None)
        stable_revision = compute_revision(decision.stable_spec, TABLE)
        replicas = decision.stable_replicas if decision.stable_replicas is not None else (self.stable.replicas if self.stable else 1)
        if self.stable is None or self.stable.revision != stable_revision:
            # A new template: pods come up unready (rolling update); the old ones keep serving meanwhile.
            self.stable = Role(stable_revision, decision.stable_spec.model.version, replicas, ready=0,
                               generation=(self.stable.generation + 1) if self.stable else 1)
        elif self.stable.replicas != replicas:
            self.stable.replicas, self.stable.ready = replicas, min(self.stable.ready, replicas)
        if decision.canary_replicas is None:
            self.canary = None
        elif self.canary is None or self.canary.revision != self.revision:
            self.canary = Role(self.revision, self.spec.model.version, decision.canary_replicas)
        else:
            self.canary.replicas = decision.canary_replicas
            self.canary.ready = min(self.canary.ready, decision.canary_replicas)
        self.client_role = decision.client_role
        if self.spec.traffic.provider != "replicas":
            self.route = decision.weights
            kept = self.keeps_mirror_percent or decision.mirror in (0, 100)
            self.mirror = decision.mirror if kept else 100
            self.headers_to_canary = decision.headers_to_canary

    # -- what a test makes happen ---------------------------------------------
    def pods_ready(self) -> None:
        for role in (self.stable, self.canary):
            if role is not None and not role.crashing:
                role.ready = role.replicas

    def finish_job(self, outcome: str = "Complete", name: str | None = None) -> str:
        """The running check Job ends as the Job controller ends it: Complete,
        Failed (BackoffLimitExceeded) or Failed (DeadlineExceeded)."""
        name = name or self.created_jobs[-1]
        job = self.jobs[name]
        reason = {"Complete": "", "Failed": "BackoffLimitExceeded", "DeadlineExceeded": "DeadlineExceeded"}[outcome]
        kind = "Complete" if outcome == "Complete" else "Failed"
        self.jobs[name] = replace(job, active=0, succeeded=int(kind == "Complete"), failed=int(kind == "Failed"),
                                  conditions=(DeploymentCondition(kind, "True", reason, ""),))
        return name

    def later(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def change(self, spec) -> None:
        self.spec = spec

    @property
    def rollout(self) -> dict:
        return (self.status or {}).get("rollout", {})

    @property
    def phase(self) -> str:
        return (self.status or {}).get("phase")

    def condition(self, type_: str) -> tuple[str, str]:
        cond = next(c for c in self.status["conditions"] if c["type"] == type_)
        return cond["status"], cond["reason"]

    def condition_message(self, type_: str) -> str:
        return next(c for c in self.status["conditions"] if c["type"] == type_).get("message", "")

    def results(self) -> list[str]:
        return [h["result"] for h in self.status.get("history", [])]


def settled_world(spec) -> World:
    """A world where `spec` serves as stable, every pod ready."""
    world = World(spec=spec)
    world.reconcile()
    world.pods_ready()
    world.reconcile()
    return world


def run(world: World, passes: int = 1, seconds: float = 0, ready: bool = True) -> World:
    """`passes` reconcile passes, pods made ready after each (unless not
    `ready`), `seconds` passing after each."""
    for _ in range(passes):
        world.reconcile()
        if ready:
            world.pods_ready()
        world.later(seconds)
    return world
