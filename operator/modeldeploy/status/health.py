"""Assess whether the desired revision is serving, converging, or stuck.

One pure function, `assess`, walks the checks in order of severity and stops
at the first that applies (like Argo Rollouts' early-return reconcile steps).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from .. import conditions as c
from ..api.spec import ModelDeploymentSpec
from ..api.durations import format_duration
from .observed import Observed, ObservedDeployment, PodSummary
from .transitions import format_time

# The kubelet resets a container's crash back-off after it has run for 10
# minutes; a restart more recent than that means the loop is still going,
# even if the container happens to be running (and ready) right now.
CRASH_LOOP_WINDOW = timedelta(minutes=10)


@dataclass(frozen=True)
class Health:
    ready: bool
    reconciling: bool
    stalled: bool
    reason: str
    message: str


def serving(message: str) -> Health:
    return Health(True, False, False, c.SERVING, message)


def converging(reason: str, message: str) -> Health:
    return Health(False, True, False, reason, message)


def stuck(reason: str, message: str) -> Health:
    return Health(False, False, True, reason, message)


@dataclass(frozen=True)
class Clock:
    """When convergence of this generation started, and whether its deadline
    already ran out earlier (a stall on the deadline must not clear itself
    just because the clock restarted)."""

    now: datetime
    started_at: datetime
    deadline_already_passed: bool = False

    def past(self, deadline_seconds: int) -> bool:
        return self.deadline_already_passed or self.now - self.started_at > timedelta(seconds=deadline_seconds)


def assess(spec: ModelDeploymentSpec, revision: str, observed: Observed, clock: Clock) -> Health:
    """Health of a valid spec whose desired revision is `revision`."""
    deadline = spec.rollout.progress_deadline_seconds
    pods = [p for p in observed.pods if p.revision == revision]

    pod_problem = _pod_problem(pods, clock, deadline)
    if pod_problem is not None:
        return pod_problem
    if observed.canary is not None:
        return converging(c.CANARY_IN_PROGRESS, f"canary revision {observed.canary.revision} is being tried out")

    stable = observed.stable
    if stable is None:
        return converging(c.CREATING, "creating the model server")
    if _deployment_deadline_exceeded(stable):
        return stuck(c.PROGRESS_DEADLINE_EXCEEDED, _not_ready_message(stable, deadline, pods))

    pending = _rollout_pending(stable, revision)
    if pending is None:
        pending = _replicas_pending(spec, stable, pods)
    if pending is None:
        return serving(f"revision {revision} ({stable.model_version}) serves with {stable.ready_replicas} ready replicas")
    if clock.past(deadline) and (clock.deadline_already_passed
                                 or not within_own_deadline(pods, clock.now, deadline, clock.started_at)):
        return stuck(c.PROGRESS_DEADLINE_EXCEEDED, _not_ready_message(stable, deadline, pods))
    return pending


def _pod_problem(pods: list[PodSummary], clock: Clock, deadline: int) -> Health | None:
    for reasons, health_reason in (
        (c.IMAGE_PULL_WAITING_REASONS, c.IMAGE_PULL_FAILED),
        (c.CONFIG_WAITING_REASONS, c.CONTAINER_CONFIG_ERROR),
    ):
        for pod in pods:
            for waiting in pod.waiting:
                if waiting.reason in reasons:
                    # Waiting here again will not help: the image or the pod config must change.
                    return stuck(health_reason, _describe(pod, waiting.container, waiting.reason, waiting.message))

    # Before crash loops: a startup probe that gives up restarts the
    # container, and that is a model too slow to load, not a crashing server.
    overdue = overdue_loads(pods, clock.now)
    if overdue:
        return stuck(c.MODEL_LOAD_TIMEOUT, did_not_load(overdue[0]) + (
            f" ({len(overdue)} pods)" if len(overdue) > 1 else ""))

    crashing = [pod for pod in pods if crash_looping(pod, clock.now)]
    if not crashing:
        return _unschedulable(pods, clock, deadline)
    pod = crashing[0]
    container = next((w.container for w in pod.waiting if w.reason == c.CRASH_LOOP_WAITING_REASON), None)
    # No restart count in the message: it grows every few seconds, and a
    # message that changes on every look would rewrite the status each time.
    message = _describe(pod, container, "CrashLoopBackOff", "") + (
        f" ({len(crashing)} pods crash-looping)" if len(crashing) > 1 else ""
    )
    if clock.past(deadline):
        return stuck(c.PODS_CRASH_LOOPING, f"{message}; still failing after {deadline}s")
    return converging(c.PODS_CRASH_LOOPING, message)


def _unschedulable(pods: list[PodSummary], clock: Clock, deadline: int) -> Health | None:
    """Pods the scheduler cannot place, said within a pass of its saying it
    (not as "not ready" at the deadline): waited for until the deadline, as
    room may come (a node added, another model scaled down, the claim
    created), then Stalled."""
    message = unschedulable_message(pods)
    if not message:
        return None
    reason = c.INSUFFICIENT_CAPACITY if lacks_resources(message) else c.UNSCHEDULABLE
    if clock.past(deadline):
        return stuck(reason, f"{message}; still unschedulable after {deadline}s (spec.rollout.progressDeadlineSeconds)")
    return converging(reason, message)


def unschedulable_message(pods: list[PodSummary]) -> str:
    """The scheduler's word on the first pod it cannot place ("" if none)."""
    waiting = sorted((pod for pod in pods if pod.unschedulable), key=lambda pod: pod.name)
    if not waiting:
        return ""
    more = f" ({len(waiting)} pods unschedulable)" if len(waiting) > 1 else ""
    return f"pod {waiting[0].name} cannot be scheduled: {waiting[0].unschedulable}{more}"


def overdue_loads(pods: list[PodSummary], now: datetime) -> list[PodSummary]:
    """Pods still loading their model past their loadTimeout, by name."""
    return sorted((pod for pod in pods if pod.loading_past_budget(now)), key=lambda pod: pod.name)


def did_not_load(pod: PodSummary) -> str:
    budget = format_duration(pod.load_timeout_seconds or 0)
    return (f"pod {pod.name} did not load its model within loadTimeout {budget} of being scheduled "
            f"(at {format_time(pod.scheduled_at)})")


def loading_message(pods: list[PodSummary]) -> str:
    """The slowest pod still loading, with when it was scheduled: a moment,
    not an elapsed time, so the status does not change every pass."""
    loading = sorted((pod for pod in pods if pod.loading), key=lambda pod: (pod.scheduled_at, pod.name))
    if not loading:
        return ""
    pod = loading[0]
    budget = f", loadTimeout {format_duration(pod.load_timeout_seconds)}" if pod.load_timeout_seconds else ""
    more = f" ({len(loading)} pods loading)" if len(loading) > 1 else ""
    return f"pod {pod.name} loading its model since {format_time(pod.scheduled_at)}{budget}{more}"


def lacks_resources(scheduler_message: str) -> bool:
    """The scheduler's message says some node would fit but for its free
    resources: "Insufficient nvidia.com/gpu", "Too many pods"."""
    return "Insufficient " in scheduler_message or "Too many pods" in scheduler_message


def crash_looping(pod: PodSummary, now: datetime) -> bool:
    """In CrashLoopBackOff now, or restarted twice within the kubelet's back-off window."""
    if any(w.reason == c.CRASH_LOOP_WAITING_REASON for w in pod.waiting):
        return True
    # Between two crashes the container is running, possibly even ready; a second
    # restart within the back-off window still means it is looping.
    recent = pod.last_terminated_at is not None and now - pod.last_terminated_at < CRASH_LOOP_WINDOW
    return pod.restart_count >= 2 and recent


def _deployment_deadline_exceeded(deployment: ObservedDeployment) -> bool:
    progressing = deployment.condition("Progressing")
    return (
        progressing is not None
        and progressing.status == c.FALSE
        and progressing.reason == c.DEPLOYMENT_DEADLINE_REASON
        and deployment.observed_generation >= deployment.generation
    )


def _rollout_pending(stable: ObservedDeployment, revision: str) -> Health | None:
    if stable.revision != revision:
        return converging(c.ROLLING_OUT, f"rolling out revision {revision} (serving {stable.revision})")
    if stable.observed_generation < stable.generation:
        return converging(c.ROLLING_OUT, f"waiting for the Deployment controller to see revision {revision}")
    if stable.updated_replicas < stable.replicas or stable.status_replicas > stable.updated_replicas:
        return converging(
            c.ROLLING_OUT,
            f"rolling out revision {revision}: {stable.updated_replicas}/{stable.replicas} pods updated",
        )
    return None


def desired_replicas(spec: ModelDeploymentSpec, stable: ObservedDeployment) -> int:
    """Replicas the user asked for. Under autoscaling the HPA owns the count,
    but never below minReplicas: a fresh Deployment starts at 1 until the HPA
    raises it, and that is not yet what was asked."""
    if spec.autoscaling is not None:
        return max(spec.autoscaling.min_replicas, stable.replicas)
    return stable.replicas


def _replicas_pending(spec: ModelDeploymentSpec, stable: ObservedDeployment, pods: list[PodSummary]) -> Health | None:
    desired = desired_replicas(spec, stable)
    if stable.ready_replicas < desired:
        counted = f"{stable.ready_replicas}/{desired} replicas ready"
        loading = loading_message(pods)
        if loading:
            return converging(c.LOADING_MODEL, f"{counted}; {loading}")
        return converging(c.REPLICAS_NOT_READY, counted)
    return None


def within_own_deadline(pods: list[PodSummary], now: datetime, deadline: int, since: datetime) -> bool:
    """progressDeadlineSeconds counts from a pod's scheduling, not from the
    spec change (`since`): a pod that waited for a node gets the whole
    deadline to load (and a loading pod its loadTimeout, if longer). Only
    pods placed within the first deadline count, so the wait stays bounded
    (at most deadline + max(deadline, loadTimeout)) however often pods are
    replaced."""
    latest = since + timedelta(seconds=deadline)
    for pod in pods:
        if pod.ready or pod.scheduled_at is None or pod.scheduled_at > latest:
            continue
        budget = max(deadline, pod.load_timeout_seconds or 0) if pod.loading else deadline
        if now - pod.scheduled_at <= timedelta(seconds=budget):
            return True
    return False


def _not_ready_message(stable: ObservedDeployment, deadline: int, pods: list[PodSummary]) -> str:
    not_ready = sorted(p.name for p in pods if not p.ready)
    suffix = f" (not ready: {', '.join(not_ready[:3])}{', ...' if len(not_ready) > 3 else ''})" if not_ready else ""
    return (
        f"{stable.ready_replicas}/{stable.replicas} replicas ready after {deadline}s "
        f"(spec.rollout.progressDeadlineSeconds){suffix}"
    )


def _describe(pod: PodSummary, container: str | None, reason: str, detail: str) -> str:
    where = f"pod {pod.name}" + (f" container {container}" if container else "")
    return f"{where}: {reason}" + (f": {detail}" if detail else "")
