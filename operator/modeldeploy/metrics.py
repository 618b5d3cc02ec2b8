"""The operator's own Prometheus metrics (served by `modeldeploy run
--metrics-port`). Names are stable: dashboards and alerts depend on them
(see manifests/monitoring/)."""
from __future__ import annotations

import asyncio
import gc
import time

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("modeldeploy_reconciles_total", "Reconcile passes, by result (ok, error).", ["result"])
RECONCILE_ERRORS = Counter("modeldeploy_reconcile_errors_total",
                           "Failed reconcile passes, by reason (HTTP status or exception type).", ["reason"])
RECONCILE_SECONDS = Histogram("modeldeploy_reconcile_duration_seconds", "Time one reconcile pass takes.",
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
API_WRITES = Counter("modeldeploy_api_writes_total", "Write requests sent to the API server.", ["verb", "kind"])
API_READS = Counter("modeldeploy_api_reads_total", "Read requests sent to the API server (besides watches).",
                    ["verb", "kind"])
ROLLOUTS = Counter("modeldeploy_rollouts_total", "Finished canary rollouts, by result.", ["result"])
VERDICTS = Counter("modeldeploy_analysis_verdicts_total", "Metric analysis verdicts.", ["verdict"])
CHECK_OUTCOMES = Counter("modeldeploy_check_outcomes_total",
                         "Smoke-test checks (spec.rollout.checks) judged, by outcome (Passed, Failed, TimedOut).",
                         ["outcome"])
CHECK_RUNNING = Gauge("modeldeploy_check_running", "1 while a smoke-test check's Job gates the canary.",
                      ["namespace", "name"])
CANARY_WEIGHT = Gauge("modeldeploy_canary_weight", "Percent of traffic the canary receives (achieved).",
                      ["namespace", "name"])
ROLLOUT_STEP = Gauge("modeldeploy_rollout_step", "Index of the current rollout step (0 when none).",
                     ["namespace", "name"])
MIRROR_PERCENT = Gauge("modeldeploy_mirror_percent", "Percent of requests copied to the canary (shadow traffic).",
                       ["namespace", "name"])
PHASE = Gauge("modeldeploy_phase", "1 for the ModelDeployment's current phase (status.phase: Ready, Canary, Shadow, "
              "Preview, Paused, Promoting, RolledBack...); the previous phase's series is removed.",
              ["namespace", "name", "phase"])
_phases: dict[tuple[str, str], str] = {}
LOOP_LAG = Gauge("modeldeploy_event_loop_lag_seconds", "How late the event loop ran a 100 ms timer, last sample.")
LOOP_LAG_MAX = Gauge("modeldeploy_event_loop_lag_max_seconds", "The worst event-loop lag seen since start.")
GC_PAUSE = Histogram("modeldeploy_gc_pause_seconds",
                     "How long each garbage collection stopped the process, by generation (2: a full one).",
                     ["generation"], buckets=(0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5))
GC_PAUSE_MAX = Gauge("modeldeploy_gc_pause_max_seconds", "The longest garbage collection since start.")
GC_FROZEN = Gauge("modeldeploy_gc_frozen_objects", "Objects frozen out of the garbage collector's full collections.")
RESYNC_SECONDS = Gauge("modeldeploy_resync_duration_seconds",
                       "How long the last full resync took: every ModelDeployment enqueued until the queue is idle.")
QUEUE_DEPTH = Gauge("modeldeploy_reconcile_in_flight", "ModelDeployments being reconciled right now.")
NOTIFICATIONS = Counter("modeldeploy_notifications_total",
                        "Rollout notifications, by endpoint, event and result (delivered, failed after every "
                        "attempt, dropped with the endpoint's queue full or at shutdown).",
                        ["endpoint", "event", "result"])
NOTIFICATION_ATTEMPT_FAILURES = Counter("modeldeploy_notification_attempt_failures_total",
                                        "Notification POSTs that failed (retried while attempts are left), by "
                                        "endpoint and reason (http-<status>, timeout, or the error's type).",
                                        ["endpoint", "reason"])

MODEL_CACHE = Counter("modeldeploy_model_cache_total",
                      "Pods whose storage initializer found their model in the shared model cache (spec.model.cache) "
                      "or downloaded it into it, by result (hit, miss); each pod counted once, when this process "
                      "sees its initializer finish.", ["result"])
_cache_pods: set[str] = set()  # uids of the pods counted, or seen finished in a listing, until they are deleted


def count_model_cache(uid: str, result: str | None, *, listed: bool = False) -> None:
    """Count a pod's model cache result once. A pod first seen in a listing
    (the operator starting, or a watch re-listing) is remembered but not
    counted: its initializer finished before, when it was counted already."""
    if result is None or not uid or uid in _cache_pods:
        return
    _cache_pods.add(uid)
    if not listed:
        MODEL_CACHE.labels(result).inc()


def forget_pod(uid: str) -> None:
    _cache_pods.discard(uid)


def serve(port: int, address: str = "0.0.0.0") -> None:
    start_http_server(port, addr=address)


def track_model(namespace: str, name: str, status: dict) -> None:
    CANARY_WEIGHT.labels(namespace, name).set((status.get("traffic") or {}).get("canary") or 0)
    MIRROR_PERCENT.labels(namespace, name).set((status.get("traffic") or {}).get("mirror") or 0)
    ROLLOUT_STEP.labels(namespace, name).set((status.get("rollout") or {}).get("step") or 0)
    CHECK_RUNNING.labels(namespace, name).set(1 if (status.get("rollout") or {}).get("check") else 0)
    phase = status.get("phase")
    previous = _phases.get((namespace, name))
    if previous is not None and previous != phase:
        _remove(PHASE, namespace, name, previous)
    if phase:
        PHASE.labels(namespace, name, phase).set(1)
        _phases[(namespace, name)] = phase


def forget_model(namespace: str, name: str) -> None:
    for gauge in (CANARY_WEIGHT, MIRROR_PERCENT, ROLLOUT_STEP, CHECK_RUNNING):
        _remove(gauge, namespace, name)
    previous = _phases.pop((namespace, name), None)
    if previous is not None:
        _remove(PHASE, namespace, name, previous)


def _remove(gauge: Gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:
        pass


class GcTimer:
    """Times the garbage collector's pauses (gc.callbacks). A collection can
    start inside any allocation, also while a metric's lock is held, so the
    callback only notes the pause; `flush` hands the notes to the metrics.

    With `freeze` (opt-in, MODELDEPLOY_GC_FREEZE=1), `flush` also moves the
    survivors of each full collection to the permanent generation
    (gc.freeze): a full collection walks every tracked object, and at 1,000
    models the longest took 1.45 s of a 1.56 s event-loop stall. Frozen
    objects that later become unreachable cycles are not freed until thawed
    (every `thaw_seconds`; the next full collection walks all): at 500
    models the longest collection fell 0.81 -> 0.11 s and peak memory rose
    1.5 times (bench/results/20261208T000157Z.json)."""

    def __init__(self, *, freeze: bool = False, thaw_seconds: float = 300.0,
                 clock=time.monotonic) -> None:
        self.pauses: list[tuple[int, float]] = []
        self.worst = 0.0
        self._began: float | None = None
        self.freeze, self.thaw_seconds, self._clock = freeze, thaw_seconds, clock
        self._thawed_at = clock()

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        elif self._began is not None:
            self.pauses.append((info["generation"], time.perf_counter() - self._began))
            self._began = None

    def flush(self) -> None:
        pauses, self.pauses = self.pauses, []
        for generation, seconds in pauses:
            GC_PAUSE.labels(str(generation)).observe(seconds)
            self.worst = max(self.worst, seconds)
        GC_PAUSE_MAX.set(self.worst)
        if not self.freeze or not any(generation == 2 for generation, _ in pauses):
            return
        if self._clock() - self._thawed_at >= self.thaw_seconds:
            gc.unfreeze()
            self._thawed_at = self._clock()
        else:
            gc.freeze()
        GC_FROZEN.set(gc.get_freeze_count())


_gc_timer: GcTimer | None = None


def time_gc(*, freeze: bool | None = None, thaw_seconds: float | None = None) -> GcTimer:
    """Install the collector's timer once per process; settings given here
    replace the timer's."""
    global _gc_timer
    if _gc_timer is None:
        _gc_timer = GcTimer()
        gc.callbacks.append(_gc_timer)
    if freeze is not None:
        _gc_timer.freeze = freeze
    if thaw_seconds is not None:
        _gc_timer.thaw_seconds = thaw_seconds
    return _gc_timer


async def watch_loop_lag(period: float = 0.1, *, gc_freeze: bool | None = None,
                         gc_thaw_seconds: float | None = None) -> None:
    """A late timer means handlers and reconciles are starved of the loop;
    the collector's pauses, noted alongside, say whether it was the cause."""
    worst = 0.0
    timer = time_gc(freeze=gc_freeze, thaw_seconds=gc_thaw_seconds)
    while True:
        start = time.perf_counter()
        await asyncio.sleep(period)
        lag = max(0.0, time.perf_counter() - start - period)
        worst = max(worst, lag)
        LOOP_LAG.set(lag)
        LOOP_LAG_MAX.set(worst)
        timer.flush()
