"""What the kube layer reads from the cluster, reduced to what status needs.

The kube layer fills these from the live objects (`observe_deployment`,
`summarize_pod` accept the raw camelCase dicts); status derivation never sees
a client object, so it stays pure and table-testable.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..api.rollout import pods_of
from ..api.times import parse_time, parse_time_or_none
from ..builders.labels import MODEL_VERSION, REVISION, ROLE
from ..builders.pod import INITIALIZER_CONTAINER, SERVER_CONTAINER


# The scheduler lists every node group's reason; the first few hundred
# characters say what matters, and a status stays small.
MAX_SCHEDULER_MESSAGE = 300


@dataclass(frozen=True)
class DeploymentCondition:
    type: str
    status: str
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ObservedDeployment:
    """One role's Deployment. Absent Deployments are None in `Observed`."""

    revision: str | None  # label modeldeploy.io/revision
    model_version: str | None  # annotation modeldeploy.io/model-version
    generation: int
    observed_generation: int
    replicas: int  # spec.replicas (set by us, or by the HPA)
    status_replicas: int = 0  # status.replicas: every pod, old revisions included
    updated_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    conditions: tuple[DeploymentCondition, ...] = ()
    # Ready pods its rolling update may take below `replicas` (spec.strategy,
    # resolved against replicas; a Recreate strategy takes them all).
    max_unavailable: int = 0

    def condition(self, type_: str) -> DeploymentCondition | None:
        return next((c for c in self.conditions if c.type == type_), None)


@dataclass(frozen=True)
class ContainerWaiting:
    container: str
    reason: str
    message: str = ""


@dataclass(frozen=True)
class ContainerTermination:
    """A container's last termination (lastState.terminated): why it stopped.
    A server that exits 0 after failing to load its model (MLServer 1.7.1
    does) shows only here: Completed, exit 0."""

    container: str
    exit_code: int | None
    reason: str = ""
    message: str = ""

    def describe(self) -> str:
        text = f"container {self.container} last terminated with exit code {self.exit_code}"
        text += f" ({self.reason})" if self.reason else ""
        message = " ".join(self.message.split())
        return text + (f": {message[:200]}" if message else "")


@dataclass(frozen=True)
class PodSummary:
    name: str
    role: str | None
    revision: str | None
    ready: bool
    restart_count: int = 0  # summed over init and main containers
    waiting: tuple[ContainerWaiting, ...] = ()
    last_terminated_at: datetime | None = None  # latest lastState.terminated.finishedAt
    terminations: tuple[ContainerTermination, ...] = ()  # each container's lastState.terminated
    # The scheduler's message while it cannot place the pod (PodScheduled
    # False, reason Unschedulable), whitespace folded and cut to fit a status.
    unschedulable: str = ""
    scheduled_at: datetime | None = None  # PodScheduled True: bound to a node
    # Every main container started (the startup probe, if any, passed): a
    # scheduled pod that has not is still downloading or loading its model.
    started: bool = False
    # The startup probe's budget (periodSeconds x failureThreshold): the
    # model's loadTimeout, carried by the pod itself. None without one.
    load_timeout_seconds: int | None = None
    # Since when the pod has been Ready (the Ready condition's last
    # transition); None when unknown.
    ready_since: datetime | None = None
    created_at: datetime | None = None  # metadata.creationTimestamp

    def ready_for(self, now: datetime, seconds: float) -> bool:
        """Ready, and for at least `seconds` (or for an unknown time)."""
        return self.ready and (self.ready_since is None or (now - self.ready_since).total_seconds() >= seconds)

    def loading_past_budget(self, now: datetime) -> bool:
        """Scheduled, never started, and past its loadTimeout."""
        return (self.load_timeout_seconds is not None and self.scheduled_at is not None and not self.ready
                and not self.started and (now - self.scheduled_at).total_seconds() > self.load_timeout_seconds)

    @property
    def loading(self) -> bool:
        return self.scheduled_at is not None and not self.ready and not self.started


@dataclass(frozen=True)
class JobSummary:
    """A smoke-test check's Job (rollout.checks), reduced to its outcome."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    succeeded: int = 0
    failed: int = 0
    active: int = 0
    conditions: tuple[DeploymentCondition, ...] = ()  # the Job's own conditions (Complete, Failed, ...)
    start_time: datetime | None = None
    created_at: datetime | None = None

    def condition(self, type_: str) -> DeploymentCondition | None:
        return next((c for c in self.conditions if c.type == type_ and c.status == "True"), None)


@dataclass(frozen=True)
class Observed:
    stable: ObservedDeployment | None = None
    canary: ObservedDeployment | None = None
    pods: tuple[PodSummary, ...] = field(default_factory=tuple)
    jobs: tuple[JobSummary, ...] = field(default_factory=tuple)  # this model's check Jobs


def summarize_job(body: Mapping[str, Any]) -> JobSummary:
    """Reduce a Job (as a camelCase dict) to what a check's outcome needs."""
    metadata, status = body.get("metadata", {}), body.get("status") or {}
    return JobSummary(
        name=metadata.get("name", ""),
        labels=dict(metadata.get("labels") or {}),
        succeeded=status.get("succeeded", 0),
        failed=status.get("failed", 0),
        active=status.get("active", 0),
        conditions=_conditions(status),
        start_time=parse_time_or_none(status.get("startTime")),
        created_at=parse_time_or_none(metadata.get("creationTimestamp")),
    )


def ready_canary_pods(pods: Iterable[PodSummary], revision: str | None,
                      canary: ObservedDeployment | None) -> int:
    """Ready canary pods of `revision`, counted pod by pod: when the canary
    Deployment is re-templated for a new canary, Recreate removes the
    superseded canary's pods, ready or not, though its readyReplicas still
    counts them (issue 9, invariant 4). With no canary pod in the watch cache
    at all (an operator restart: the caches fill in any order), the canary
    Deployment's readyReplicas if it runs `revision`; no Deployment, none.
    The machine's route weight, the report and a held status all count by
    this one rule."""
    pods = tuple(pods)
    if not any(pod.role == "canary" for pod in pods):
        return canary.ready_replicas if canary is not None and canary.revision == revision else 0
    return sum(1 for pod in pods if pod.role == "canary" and pod.revision == revision and pod.ready)


def observe_deployment(body: Mapping[str, Any] | None) -> ObservedDeployment | None:
    """Reduce a Deployment (as a camelCase dict) to what status needs."""
    if not body:
        return None
    metadata, spec, status = body.get("metadata", {}), body.get("spec", {}), body.get("status") or {}
    return ObservedDeployment(
        revision=(metadata.get("labels") or {}).get(REVISION),
        model_version=(metadata.get("annotations") or {}).get(MODEL_VERSION),
        generation=metadata.get("generation", 0),
        observed_generation=status.get("observedGeneration", 0),
        replicas=spec.get("replicas", 1),  # the API server defaults it to 1
        status_replicas=status.get("replicas", 0),
        updated_replicas=status.get("updatedReplicas", 0),
        ready_replicas=status.get("readyReplicas", 0),
        available_replicas=status.get("availableReplicas", 0),
        conditions=_conditions(status),
        max_unavailable=_max_unavailable(spec.get("strategy") or {}, spec.get("replicas", 1)),
    )


def _max_unavailable(strategy: Mapping[str, Any], replicas: int) -> int:
    """A Deployment's maxUnavailable in pods, as its controller resolves it
    (defaults 25% and 25%; a percentage rounds down, maxSurge's up; both 0
    makes it 1)."""
    if strategy.get("type") == "Recreate":
        return replicas
    rolling = strategy.get("rollingUpdate") or {}
    unavailable = pods_of(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    surge = pods_of(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    return 1 if unavailable == 0 and surge == 0 else unavailable


def ready_after_rollout(pods: Iterable[PodSummary], role: str, deployment: ObservedDeployment | None,
                        *, replicas: int | None = None, template: str | None = None,
                        unavailable: int | None = None) -> int:
    """A role's ready pods behind its Service once its Deployment's
    controller has acted: those of its template (`template`, else the
    Deployment's revision) up to its size (`replicas`, else the Deployment's),
    and while its own rolling update goes on, pods of an older template as
    far as it keeps them: it removes old ready pods down to replicas -
    maxUnavailable ready in all (`unavailable`: the maxUnavailable a write
    gives it, else its own). A crash-looping pod counts while it is ready:
    the Service routes to it. With no pod of the role in the watch cache at
    all, the Deployment's readyReplicas."""
    if deployment is None:
        return 0
    replicas = deployment.replicas if replicas is None else replicas
    pods = tuple(pods)
    if not any(pod.role == role for pod in pods):  # no pod of it in the cache yet: as ready_canary_pods
        return min(deployment.ready_replicas, replicas)
    template = template or deployment.revision
    ready = [pod for pod in pods if pod.role == role and pod.ready]
    current = sum(1 for pod in ready if pod.revision == template)
    if current == len(ready):
        return min(current, replicas)
    unavailable = deployment.max_unavailable if unavailable is None else unavailable
    return min(len(ready), max(min(current, replicas), replicas - unavailable))


MODEL_CACHE_RESULTS = ("hit", "miss")


def model_cache_result(body: Mapping[str, Any]) -> str | None:
    """"hit" or "miss": what the storage initializer of a pod with a model
    cache (spec.model.cache) wrote as its termination message ("cache: hit"),
    once it finished; None before, without a cache, or when it failed."""
    for status in (body.get("status") or {}).get("initContainerStatuses") or ():
        if status.get("name") != INITIALIZER_CONTAINER:
            continue
        terminated = (status.get("state") or {}).get("terminated") or {}
        message = (terminated.get("message") or "").strip()
        if terminated.get("exitCode") == 0 and message.startswith("cache: "):
            result = message[len("cache: "):].strip()
            return result if result in MODEL_CACHE_RESULTS else None
    return None


def summarize_pod(body: Mapping[str, Any]) -> PodSummary:
    """Reduce a Pod (as a camelCase dict) to readiness, restarts and waiting reasons."""
    metadata, status = body.get("metadata", {}), body.get("status") or {}
    labels = metadata.get("labels") or {}
    containers = [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]
    waiting = tuple(
        ContainerWaiting(c["name"], c["state"]["waiting"].get("reason", ""), c["state"]["waiting"].get("message", ""))
        for c in containers
        if (c.get("state") or {}).get("waiting")
    )
    finished = [
        parse_time(c["lastState"]["terminated"]["finishedAt"])
        for c in containers
        if ((c.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
    ]
    terminations = tuple(
        ContainerTermination(c["name"], t.get("exitCode"), t.get("reason", ""), t.get("message", ""))
        for c in containers
        if (t := (c.get("lastState") or {}).get("terminated"))
    )
    conditions = status.get("conditions") or ()
    unschedulable = next((" ".join((c.get("message") or "unschedulable").split())[:MAX_SCHEDULER_MESSAGE]
                          for c in conditions if c.get("type") == "PodScheduled" and c.get("status") == "False"
                          and c.get("reason") == "Unschedulable"), "")
    scheduled = next((c for c in conditions if c.get("type") == "PodScheduled" and c.get("status") == "True"), None)
    ready_condition = next((c for c in conditions if c.get("type") == "Ready" and c.get("status") == "True"), None)
    ready = ready_condition is not None
    main = status.get("containerStatuses") or ()
    return PodSummary(
        name=metadata.get("name", ""),
        role=labels.get(ROLE),
        revision=labels.get(REVISION),
        ready=ready,
        restart_count=sum(c.get("restartCount", 0) for c in containers),
        waiting=waiting,
        last_terminated_at=max(finished) if finished else None,
        terminations=terminations,
        unschedulable=unschedulable,
        scheduled_at=parse_time_or_none(scheduled.get("lastTransitionTime")) if scheduled else None,
        started=bool(main) and all(c.get("started") for c in main),
        load_timeout_seconds=_startup_budget(body.get("spec") or {}),
        ready_since=parse_time_or_none(ready_condition.get("lastTransitionTime")) if ready_condition else None,
        created_at=parse_time_or_none(metadata.get("creationTimestamp")),
    )


def _startup_budget(pod_spec: Mapping[str, Any]) -> int | None:
    for container in pod_spec.get("containers") or ():
        if container.get("name") == SERVER_CONTAINER and container.get("startupProbe"):
            probe = container["startupProbe"]
            return int(probe.get("periodSeconds", 10)) * int(probe.get("failureThreshold", 3))
    return None




def _conditions(status: dict) -> tuple[DeploymentCondition, ...]:
    """A workload's status conditions (a Deployment's, a Job's)."""
    return tuple(DeploymentCondition(c["type"], c["status"], c.get("reason", ""), c.get("message", ""))
                 for c in status.get("conditions") or ())
