"""The collector's pauses are metrics (modeldeploy_gc_pause_seconds): a
long full collection is the first suspect when the event loop stalls at
scale, and these say whether it was."""
import gc

from prometheus_client import REGISTRY

from modeldeploy import metrics


def _full_collections() -> float:
    return REGISTRY.get_sample_value("modeldeploy_gc_pause_seconds_count", {"generation": "2"}) or 0.0


def test_a_full_collection_is_timed_and_counted_once_flushed():
    assert metrics.time_gc() is metrics.time_gc(), "one timer per process, not one per call"
    # A timer of its own: an operator running in this process (the
    # integration tests' in-process one) flushes the process's timer.
    timer = metrics.GcTimer()
    gc.callbacks.append(timer)
    try:
        before = _full_collections()
        garbage = [[] for _ in range(50_000)]
        for a, b in zip(garbage, garbage[1:]):
            a.append(b)
            b.append(a)  # cycles: only the collector frees them
        del garbage, a, b
        gc.collect(2)
    finally:
        gc.callbacks.remove(timer)
    assert any(generation == 2 and seconds > 0 for generation, seconds in timer.pauses), \
        f"the callback notes the full collection's pause: {timer.pauses}"
    timer.flush()
    assert timer.pauses == [] and timer.worst > 0
    assert _full_collections() >= before + 1, "flushed into the metric"
    assert REGISTRY.get_sample_value("modeldeploy_gc_pause_max_seconds") > 0


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_survivors_of_a_full_collection_are_frozen_and_thawed_after_a_while():
    """A full collection walks every tracked object (the watch cache most of
    them): its survivors are frozen out of the next ones, and thawed every
    thaw_seconds so cycles among them are still freed."""
    clock = Clock()
    timer = metrics.GcTimer(freeze=True, thaw_seconds=60, clock=clock)
    try:
        timer.pauses = [(0, 0.001), (1, 0.002)]
        timer.flush()
        assert gc.get_freeze_count() == 0, "only a full collection's survivors are frozen"
        timer.pauses = [(2, 0.5)]
        timer.flush()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        assert REGISTRY.get_sample_value("modeldeploy_gc_frozen_objects") >= frozen > 0
        clock.now = 61
        timer.pauses = [(2, 0.1)]
        timer.flush()
        assert gc.get_freeze_count() == 0, "thawed: the next full collection walks everything"
        timer.pauses = [(2, 0.4)]
        timer.flush()
        assert gc.get_freeze_count() > 0, "frozen again after the thaw's full collection"
    finally:
        gc.unfreeze()


def test_without_freeze_nothing_is_frozen():
    timer = metrics.GcTimer(freeze=False)
    timer.pauses = [(2, 0.5)]
    timer.flush()
    assert gc.get_freeze_count() == 0
