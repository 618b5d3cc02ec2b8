"""The phase: a one-word summary derived from the status alone (never stored
as an input), so it cannot disagree with the conditions."""

from .. import conditions as c
from ..api.status import ModelDeploymentStatus, Phase, Stage

_UNHEALTHY_WHILE_SERVING = (c.REPLICAS_NOT_READY, c.PODS_CRASH_LOOPING, c.INSUFFICIENT_CAPACITY, c.UNSCHEDULABLE)


def derive_phase(status: ModelDeploymentStatus) -> Phase:
    stalled = status.condition(c.STALLED)
    if stalled is not None and stalled.status == c.TRUE:
        return Phase.ROLLED_BACK if stalled.reason == c.ROLLED_BACK else Phase.FAILED

    rollout = status.rollout
    if rollout is not None and rollout.stage == Stage.PROMOTING:
        return Phase.PROMOTING
    if status.canary is not None:
        if rollout is not None and rollout.check is not None:
            return Phase.CHECK_RUNNING
        if rollout is not None and rollout.paused_reason:
            return Phase.PAUSED
        if rollout is not None and rollout.total_steps and rollout.step >= rollout.total_steps:
            return Phase.PROMOTING
        if rollout is not None and rollout.strategy == "BlueGreen" and rollout.weight < 100:
            return Phase.PREVIEW
        if rollout is not None and rollout.weight == 0 and status.traffic is not None and status.traffic.mirror:
            return Phase.SHADOW
        return Phase.CANARY

    ready = status.condition(c.READY)
    if ready is not None and ready.status == c.TRUE:
        return Phase.READY
    stable = status.stable
    deployed = bool(status.history) and stable is not None and stable.revision == status.history[-1].revision
    if deployed and ready is not None and ready.reason in _UNHEALTHY_WHILE_SERVING:
        return Phase.DEGRADED  # the revision had been serving fine, now it is not
    if not status.history and (stable is None or stable.ready_replicas == 0):
        return Phase.PENDING  # nothing has ever served
    return Phase.PROGRESSING
