"""A reconcile queue with the semantics of controller-runtime's workqueue:

* a key is reconciled by at most one task at a time;
* triggers that arrive while a key is being reconciled coalesce into one
  more pass afterwards (a burst of watch events costs one reconcile, not N);
* at most ``concurrency`` keys are reconciled at once; when more wait,
  they are let in by when they asked, except that an *urgent* key (the
  controller's: a ModelDeployment with no children yet) counts as having
  asked ``head_start`` seconds earlier. In a burst of new models, each one's
  first children are written before other models' status refreshes, yet no
  pass waits more than ``head_start`` seconds longer than in plain order;
* ``later(key, seconds)`` asks for a pass at a point in time (pauses,
  analysis intervals, deadlines) and keeps only the earliest such request;
* a failing reconcile is retried with capped exponential back-off, so bad
  input or a flaky API never makes the operator loop hot.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from typing import Awaitable, Callable, Hashable

from ..backoff import capped_backoff

log = logging.getLogger(__name__)

Reconcile = Callable[[Hashable], Awaitable["float | None"]]


def _never(key: Hashable) -> bool:
    return False


class _Slots:
    """A semaphore whose waiters are let in by a due time rather than by
    arrival (asyncio.Semaphore is first come, first served)."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiting: list[tuple[float, int, asyncio.Future]] = []
        self._order = itertools.count()

    async def acquire(self, due: float) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            # Held across a turn of the loop even when free: a pass that needs
            # no request (most of a full resync) never suspends, so without
            # this every queued pass ran in one turn and the loop stalled for
            # all of them (5.3 s at 3,000 models: watch events, timers and
            # the liveness probe waited). Now `size` passes run per turn.
            try:
                await asyncio.sleep(0)
            except asyncio.CancelledError:
                self.release()  # cancelled before its pass: the slot is not kept
                raise
            return
        granted = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (due, next(self._order), granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # let in just as it was cancelled: pass the slot on
            raise

    def release(self) -> None:
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():  # a cancelled waiter is skipped
                granted.set_result(None)
                return
        self._free += 1


class ReconcileQueue:
    def __init__(self, reconcile: Reconcile, *, concurrency: int = 8,
                 backoff_base: float = 0.5, backoff_max: float = 60.0,
                 urgent: Callable[[Hashable], bool] = _never, head_start: float = 30.0) -> None:
        self._reconcile = reconcile
        self._slots = _Slots(concurrency)
        self._urgent = urgent
        self._head_start = head_start
        self._running: set[Hashable] = set()
        self._dirty: set[Hashable] = set()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}
        self._tasks: set[asyncio.Task] = set()
        self._backoff = (backoff_base, backoff_max)
        self.passes = 0
        self.errors = 0
        self._closed = False

    def add(self, key: Hashable) -> None:
        if self._closed:
            return
        if key in self._running:
            self._dirty.add(key)  # one more pass when the current one ends
            return
        self._running.add(key)
        task = asyncio.get_running_loop().create_task(self._work(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def later(self, key: Hashable, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, seconds)
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return  # an earlier pass is already booked
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    async def _work(self, key: Hashable) -> None:
        try:
            while True:
                due = asyncio.get_running_loop().time()
                await self._slots.acquire(due - self._head_start if self._urgent(key) else due)
                # Triggers that came while it waited for a slot are seen by
                # this pass (the cache is updated before a trigger): only
                # those from here on ask for one more.
                self._dirty.discard(key)
                try:
                    requeue = await self._one_pass(key)
                finally:
                    self._slots.release()
                if requeue is not None:
                    self.later(key, requeue)
                if key not in self._dirty or self._closed:
                    break
        finally:
            self._running.discard(key)

    async def _one_pass(self, key: Hashable) -> float | None:
        self.passes += 1
        try:
            requeue = await self._reconcile(key)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.errors += 1
            failures = self._failures[key] = self._failures.get(key, 0) + 1
            base, cap = self._backoff
            delay = capped_backoff(base, cap, failures)
            log.exception("reconcile of %s failed (attempt %d); retrying in %.1fs", key, failures, delay)
            return delay
        self._failures.pop(key, None)
        return requeue

    @property
    def idle(self) -> bool:
        return not self._running

    async def close(self) -> None:
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
