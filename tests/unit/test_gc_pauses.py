"""The collector's pauses are metrics (modeldeploy_gc_pause_seconds): a
long full collection is the first suspect when the event loop stalls at
scale, and these say whether it was."""
import gc

from prometheus_client import REGISTRY

from modeldeploy import metrics


def _full_collections() -> float:
    return REGISTRY.get_sample_value("modeldeploy_gc_pause_seconds_count", {"generation": "2"}) or 0.0


def test_a_full_collection_is_timed_and_counted_once_flushed():
    timer = metrics.time_gc()
    assert metrics.time_gc() is timer, "one timer per process, not one per call"
    timer.flush()
    before = _full_collections()
    garbage = [[] for _ in range(50_000)]
    for a, b in zip(garbage, garbage[1:]):
        a.append(b)
        b.append(a)  # cycles: only the collector frees them
    del garbage, a, b
    gc.collect(2)
    assert _full_collections() == before, "the callback only notes the pause; the metric comes with flush"
    timer.flush()
    assert _full_collections() >= before + 1
    assert REGISTRY.get_sample_value("modeldeploy_gc_pause_max_seconds") > 0
