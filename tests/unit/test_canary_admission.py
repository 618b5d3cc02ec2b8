"""--max-concurrent-canaries: who may start a canary, who waits, in what order (issue 11)."""
from datetime import datetime, timedelta, timezone

from modeldeploy.rollout.admission import CanarySlots, admit
from support.rollout_world import run, settled_world, spec_for

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)


def slots(limit, in_flight=(), queued=()):
    return CanarySlots(limit=limit, in_flight=frozenset(in_flight), queued=tuple(queued))


def test_a_free_slot_admits_and_a_full_house_queues():
    assert admit(slots(2, ["a/x"]), "b/y", T0).admitted
    refused = admit(slots(2, ["a/x", "a/z"]), "b/y", T0)
    assert not refused.admitted and (refused.position, refused.waiting) == (1, 1)


def test_the_line_is_first_come_first_served_then_by_name():
    line = [(T0, "ns/c"), (T0 + timedelta(seconds=1), "ns/a"), (T0, "ns/b")]
    full = slots(1, ["ns/busy"], line)
    assert [admit(full, key, since).position for since, key in line] == [2, 3, 1]
    # One slot frees: only the first in line goes.
    free = slots(1, [], line)
    assert [admit(free, key, since).admitted for since, key in line] == [False, False, True]


def test_one_holding_a_slot_keeps_it_for_its_next_revision():
    assert admit(slots(1, ["ns/a"], [(T0, "ns/b")]), "ns/a", T0 + timedelta(minutes=5)).admitted


def v(version, **extra):
    return spec_for(version, replicas=4, **extra)


def test_a_new_revision_with_no_slot_waits_in_line_stable_serving_then_goes_when_one_frees():
    world = settled_world(v("v7"))
    world.slots = slots(1, ["other/busy"], [(world.now, "ml/fraud")])
    world.change(v("v8"))
    decision = world.reconcile()
    assert decision.canary_replicas is None and world.canary is None
    assert world.condition("Ready") == ("False", "CanaryQueued")
    assert world.status["message"] == (
        f"v8 (revision {world.revision}) is waiting for a canary slot: 1 of 1 in line, 1 canaries at most at "
        "once (--max-concurrent-canaries); stable serves v7 (revision "
        f"{world.status['stable']['revision']})")
    assert [e.reason for e in decision.events] == ["CanaryQueued"]
    assert world.status["phase"] == "Progressing" and world.rollout["stage"] == "Queued"
    assert world.stable.version == "v7" and (world.stable.replicas, world.stable.ready) == (4, 4)
    status = world.status
    world.later(30)
    again = world.reconcile()
    assert world.status == status and not again.events, "waiting writes nothing new"
    assert again.requeue_after is not None

    world.slots = slots(1, [], [(world.now, "ml/fraud")])
    decision = world.reconcile()
    assert world.rollout["stage"] == "Canary" and [e.reason for e in decision.events] == ["CanaryStarted"]
    run(world, 12, seconds=61)
    assert world.phase == "Ready" and world.status["stable"]["modelVersion"] == "v8"


def test_without_a_limit_nothing_waits():
    world = settled_world(v("v7"))
    world.change(v("v8"))
    world.reconcile()
    assert world.rollout["stage"] == "Canary"
