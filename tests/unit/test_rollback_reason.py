"""A rollback says why the canary's server stopped, not only that it
restarts: MLServer 1.7.1 exits 0 when its model does not load, so the pod
shows Completed and a restart, and the only real reason is the container's
last termination (exit code, reason, message)."""
from __future__ import annotations

from dataclasses import replace

from modeldeploy.status.observed import ContainerTermination, summarize_pod
from support.rollout_world import settled_world, spec_for

COMPLETED = ContainerTermination("model-server", 0, "Completed")


def v(version):
    return spec_for(version, replicas=2)


def test_the_last_termination_is_read_from_the_pod():
    raw = {
        "metadata": {"name": "iris-canary-x", "labels": {}},
        "status": {"containerStatuses": [
            {"name": "model-server", "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
             "lastState": {"terminated": {"exitCode": 0, "reason": "Completed",
                                          "finishedAt": "2026-01-01T00:00:00Z"}}},
            {"name": "sidecar", "restartCount": 0, "state": {"running": {}}},
        ]},
    }
    assert summarize_pod(raw).terminations == (COMPLETED,)
    oom = ContainerTermination("model-server", 137, "OOMKilled", "  out of\nmemory ")
    assert oom.describe() == "container model-server last terminated with exit code 137 (OOMKilled): out of memory"
    assert COMPLETED.describe() == "container model-server last terminated with exit code 0 (Completed)"


def _crash_with(world, termination):
    pods = world.canary.pods

    def with_termination(role):
        first, *rest = pods(role)
        return [replace(first, terminations=(termination,)), *rest]

    world.canary.pods = with_termination


def test_a_crash_looping_canary_rolls_back_with_its_last_termination_in_the_message():
    world = settled_world(v("v1"))
    world.change(v("v2"))
    world.reconcile()
    world.reconcile()  # the canary is sized once its start is recorded (replicas provider)
    world.canary.crashing, world.canary.restarts = True, 3
    _crash_with(world, COMPLETED)
    world.reconcile()
    assert world.phase == "RolledBack"
    message = world.status["message"]
    assert "fraud-canary-0 container model-server is crash-looping (3 restarts)" in message, message
    assert "last terminated with exit code 0 (Completed)" in message, message


def test_rising_restarts_roll_back_with_the_last_termination_in_the_message():
    world = settled_world(v("v1"))
    world.change(v("v2"))
    world.reconcile()
    world.reconcile()  # the canary is sized once its start is recorded (replicas provider)
    _crash_with(world, COMPLETED)
    for restarts in range(1, 10):
        world.canary.restarts = restarts
        world.reconcile()
        if world.phase == "RolledBack":
            break
    message = world.status["message"]
    assert world.phase == "RolledBack" and "canary containers restarted" in message, world.status
    assert "pod fraud-canary-0 container model-server last terminated with exit code 0 (Completed)" in message, message
