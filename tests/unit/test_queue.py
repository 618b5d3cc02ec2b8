"""kube/queue.py ReconcileQueue: the workqueue semantics the controller relies on.

Plain test functions that run their own event loop (asyncio.run): no
pytest-asyncio. Times are read from the loop's clock; back-off values are
a few hundredths of a second so the whole file runs in well under a second.
"""
import asyncio

import pytest

from modeldeploy.kube.queue import ReconcileQueue

# call_at may fire up to the clock's resolution early; measured gaps allow this much.
EPSILON = 0.005


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=5))


async def settled(queue: ReconcileQueue) -> None:
    """Until no key is being reconciled (booked timers do not count)."""
    await asyncio.sleep(0)
    while not queue.idle:
        await asyncio.sleep(0.001)


async def until(predicate, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


async def spin(turns: int = 10) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


class Recorder:
    """A reconcile that records each pass and can be held open by a gate."""

    def __init__(self, *, gated: bool = False, requeue=None):
        self.calls: list[tuple[object, float]] = []
        self.active: dict[object, int] = {}
        self.most_per_key: dict[object, int] = {}
        self.most_at_once = 0
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.requeue = requeue
        self.cancelled: list[object] = []

    async def __call__(self, key):
        self.calls.append((key, asyncio.get_running_loop().time()))
        self.active[key] = self.active.get(key, 0) + 1
        self.most_per_key[key] = max(self.most_per_key.get(key, 0), self.active[key])
        self.most_at_once = max(self.most_at_once, sum(self.active.values()))
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        finally:
            self.active[key] -= 1
        return self.requeue(key) if callable(self.requeue) else self.requeue

    def keys(self):
        return [key for key, _ in self.calls]


# -- one task per key, coalescing ------------------------------------------------------


def test_a_key_is_reconciled_by_one_task_at_a_time():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec, concurrency=8)
        queue.add("a")
        await spin()
        for _ in range(5):
            queue.add("a")
            await spin()
        assert rec.active == {"a": 1}, "the triggers during the pass started no second task"
        rec.gate.set()
        await settled(queue)
        assert rec.most_per_key == {"a": 1}
        await queue.close()
    run(main())


def test_triggers_during_a_pass_coalesce_into_exactly_one_more_pass():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec)
        queue.add("a")
        await spin()
        assert queue.passes == 1
        for _ in range(10):  # a burst of watch events while the pass runs
            queue.add("a")
        rec.gate.set()
        await settled(queue)
        assert queue.passes == 2 and rec.keys() == ["a", "a"]
        await queue.close()
    run(main())


def test_a_trigger_after_a_pass_ended_starts_a_new_one():
    async def main():
        rec = Recorder()
        queue = ReconcileQueue(rec)
        queue.add("a")
        await settled(queue)
        queue.add("a")
        await settled(queue)
        assert queue.passes == 2
        await queue.close()
    run(main())


def test_different_keys_do_not_coalesce():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec)
        for key in ("a", "b", "c"):
            queue.add(key)
        await spin()
        assert sorted(rec.active) == ["a", "b", "c"] and rec.most_at_once == 3
        rec.gate.set()
        await settled(queue)
        assert sorted(rec.keys()) == ["a", "b", "c"]
        await queue.close()
    run(main())


# -- concurrency -------------------------------------------------------------------------


def test_at_most_concurrency_keys_are_reconciled_at_once():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec, concurrency=2)
        for key in range(6):
            queue.add(key)
        await spin(20)
        assert sum(rec.active.values()) == 2 and queue.passes == 2
        assert not queue.idle
        rec.gate.set()
        await settled(queue)
        assert queue.passes == 6 and sorted(rec.keys()) == list(range(6))
        assert rec.most_at_once == 2
        await queue.close()
    run(main())


def test_triggers_while_a_key_waits_for_a_slot_cost_no_extra_pass():
    # The pass that has not started yet reads the cache those triggers updated.
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec, concurrency=1)
        queue.add("busy")
        queue.add("a")
        await spin()
        for _ in range(5):
            queue.add("a")
        rec.gate.set()
        await settled(queue)
        assert rec.keys() == ["busy", "a"]
        await queue.close()
    run(main())


# -- urgent keys (models with no children yet) ---------------------------------------------


def passes_in_order(head_start: float, arrivals: list[tuple[str, float]]) -> list:
    """The order of passes with one slot held by "busy" while `arrivals`
    (key, pause after it) come in; keys named new* are urgent."""
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec, concurrency=1, urgent=lambda key: key.startswith("new"), head_start=head_start)
        queue.add("busy")
        await spin()
        for key, pause in arrivals:
            queue.add(key)
            await asyncio.sleep(pause)
        rec.gate.set()
        await settled(queue)
        await queue.close()
        return rec.keys()
    return run(main())


def test_an_urgent_key_goes_ahead_of_keys_that_asked_before_it():
    arrivals = [(key, 0.002) for key in ("old1", "new1", "old2", "new2")]  # distinct arrival times
    assert passes_in_order(30, arrivals) == ["busy", "new1", "new2", "old1", "old2"]


def test_no_key_waits_more_than_the_head_start_longer_than_in_order():
    # A key that asked more than head_start before an urgent one still goes first.
    assert passes_in_order(0.02, [("old", 0.05), ("new", 0)]) == ["busy", "old", "new"]


def test_a_key_cancelled_while_it_waits_leaves_its_slot_to_the_next():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec, concurrency=1)
        queue.add("busy")
        queue.add("a")
        queue.add("b")
        await spin()
        waiting_a = [t for t in queue._tasks if t.get_coro().cr_frame.f_locals.get("key") == "a"]
        assert len(waiting_a) == 1
        waiting_a[0].cancel()
        rec.gate.set()
        await settled(queue)
        assert rec.keys() == ["busy", "b"]
        queue.add("c")
        await settled(queue)
        assert rec.keys() == ["busy", "b", "c"], "the slot count survived the cancellation"
        await queue.close()
    run(main())


# -- later ---------------------------------------------------------------------------------


def test_later_runs_a_pass_at_the_booked_time():
    async def main():
        rec = Recorder()
        queue = ReconcileQueue(rec)
        loop = asyncio.get_running_loop()
        start = loop.time()
        queue.later("a", 0.03)
        await asyncio.sleep(0.01)
        assert queue.passes == 0
        await asyncio.sleep(0.1)
        await settled(queue)
        [(key, at)] = rec.calls
        assert key == "a" and 0.03 - EPSILON <= at - start < 0.03 + 1.0
        await queue.close()
    run(main())


def test_later_keeps_only_the_earliest_booking():
    async def main():
        rec = Recorder()
        queue = ReconcileQueue(rec)
        loop = asyncio.get_running_loop()
        start = loop.time()
        queue.later("a", 0.3)
        queue.later("a", 0.02)  # earlier: replaces the 0.3 booking
        queue.later("a", 0.2)  # later than what is booked: ignored
        await until(lambda: rec.calls)
        assert 0.02 - EPSILON <= rec.calls[0][1] - start < 0.2
        await asyncio.sleep(max(0.0, start + 0.35 - loop.time()))
        await settled(queue)
        assert len(rec.calls) == 1, "one booking kept, one pass"
        await queue.close()
    run(main())


def test_a_negative_delay_means_as_soon_as_possible():
    async def main():
        rec = Recorder()
        queue = ReconcileQueue(rec)
        queue.later("a", -5)
        await asyncio.sleep(0.01)
        await settled(queue)
        assert queue.passes == 1
        await queue.close()
    run(main())


def test_later_while_the_key_runs_coalesces_like_a_trigger():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec)
        queue.add("a")
        await spin()
        queue.later("a", 0)
        queue.add("a")
        await asyncio.sleep(0.01)
        rec.gate.set()
        await settled(queue)
        assert queue.passes == 2
        await queue.close()
    run(main())


def test_a_requeue_returned_by_the_reconcile_books_the_next_pass():
    async def main():
        passes = []

        async def reconcile(key):
            passes.append(asyncio.get_running_loop().time())
            return 0.02 if len(passes) < 3 else None

        queue = ReconcileQueue(reconcile)
        queue.add("a")
        await until(lambda: len(passes) == 3)
        await asyncio.sleep(0.05)
        await settled(queue)
        assert len(passes) == 3, "two requeues, then none: no more passes"
        gaps = [b - a for a, b in zip(passes, passes[1:])]
        assert all(0.02 - EPSILON <= gap < 1.0 for gap in gaps), gaps
        await queue.close()
    run(main())


# -- failures and back-off --------------------------------------------------------------


def spy_on_later(queue: ReconcileQueue) -> list[tuple[object, float]]:
    """The delays the queue books (its own retries go through later())."""
    booked = []
    book = queue.later

    def later(key, seconds):
        booked.append((key, seconds))
        book(key, seconds)
    queue.later = later
    return booked


def test_a_failing_reconcile_is_retried_with_capped_exponential_back_off():
    async def main():
        times = []

        async def reconcile(key):
            times.append(asyncio.get_running_loop().time())
            if len(times) <= 5:
                raise RuntimeError("API flaked")
            return None

        queue = ReconcileQueue(reconcile, backoff_base=0.01, backoff_max=0.04)
        booked = spy_on_later(queue)
        queue.add("a")
        await until(lambda: len(times) == 6)
        await asyncio.sleep(0.05)
        await settled(queue)
        assert len(times) == 6, "retried until it succeeded, then no more passes"
        assert queue.errors == 5 and queue.passes == 6
        expected = [0.01, 0.02, 0.04, 0.04, 0.04]  # base * 2**n, capped at backoff_max
        assert [key for key, _ in booked] == ["a"] * 5
        assert [seconds for _, seconds in booked] == pytest.approx(expected)
        gaps = [b - a for a, b in zip(times, times[1:])]
        for gap, delay in zip(gaps, expected):
            assert delay - EPSILON <= gap < delay + 1.0, (gaps, expected)
        await queue.close()
    run(main())


def test_a_success_resets_the_back_off():
    async def main():
        times = []
        outcomes = iter([RuntimeError, RuntimeError, RuntimeError, None, RuntimeError, None])

        async def reconcile(key):
            times.append(asyncio.get_running_loop().time())
            outcome = next(outcomes)
            if outcome is not None:
                raise outcome("boom")
            return None

        queue = ReconcileQueue(reconcile, backoff_base=0.01, backoff_max=1.0)
        booked = spy_on_later(queue)
        queue.add("a")
        await until(lambda: len(times) == 4)
        await settled(queue)
        queue.add("a")  # fails once more: the delay starts again at the base
        await until(lambda: len(times) == 6)
        await settled(queue)
        assert [seconds for _, seconds in booked] == pytest.approx([0.01, 0.02, 0.04, 0.01])
        await queue.close()
    run(main())


def test_back_off_is_per_key():
    async def main():
        times: dict[str, list[float]] = {"bad": [], "good": []}

        async def reconcile(key):
            times[key].append(asyncio.get_running_loop().time())
            if key == "bad":
                raise RuntimeError("always")
            return None

        queue = ReconcileQueue(reconcile, backoff_base=0.01, backoff_max=0.02)
        booked = spy_on_later(queue)
        queue.add("bad")
        queue.add("good")
        await until(lambda: len(times["bad"]) >= 4)
        assert len(times["good"]) == 1, "the healthy key is not retried"
        assert {key for key, _ in booked} == {"bad"}
        gaps = [b - a for a, b in zip(times["bad"], times["bad"][1:])]
        assert all(gap >= 0.01 - EPSILON for gap in gaps), "retried, but never hot"
        await queue.close()
    run(main())


def test_a_requeue_after_a_failure_does_not_reset_the_count_of_another_key():
    async def main():
        async def reconcile(key):
            if key == "bad":
                raise RuntimeError("always")
            return None

        queue = ReconcileQueue(reconcile, backoff_base=0.01, backoff_max=1.0)
        booked = spy_on_later(queue)
        queue.add("bad")
        await until(lambda: len(booked) >= 2)
        queue.add("good")
        await until(lambda: len(booked) >= 3)
        assert [seconds for _, seconds in booked[:3]] == pytest.approx([0.01, 0.02, 0.04])
        await queue.close()
    run(main())


# -- idle, passes, close ---------------------------------------------------------------


def test_idle_is_true_only_when_no_key_is_running():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec)
        assert queue.idle and queue.passes == 0
        queue.add("a")
        assert not queue.idle, "busy from the moment a key is added"
        await spin()
        assert not queue.idle
        rec.gate.set()
        await settled(queue)
        assert queue.idle and queue.passes == 1
        queue.later("a", 10)
        assert queue.idle, "a booked pass is not work in progress"
        await queue.close()
    run(main())


def test_close_cancels_running_passes_and_booked_timers_and_refuses_new_keys():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec)
        queue.add("a")
        queue.later("b", 0.01)
        await spin()
        await queue.close()
        assert rec.cancelled == ["a"]
        assert queue.idle
        queue.add("c")
        queue.later("d", 0)
        await asyncio.sleep(0.05)
        assert rec.keys() == ["a"], "nothing runs after close"
        assert queue.passes == 1
    run(main())


def test_close_during_a_pass_with_a_pending_trigger_runs_no_more_pass():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec)
        queue.add("a")
        await spin()
        queue.add("a")  # dirty: one more pass would follow
        closing = asyncio.ensure_future(queue.close())
        await closing
        rec.gate.set()
        await asyncio.sleep(0.01)
        assert queue.passes == 1 and queue.idle
    run(main())


def test_a_cancelled_reconcile_is_not_counted_as_a_failure():
    async def main():
        rec = Recorder(gated=True)
        queue = ReconcileQueue(rec, backoff_base=0.01)
        queue.add("a")
        await spin()
        await queue.close()
        assert queue.errors == 0
    run(main())


def test_capped_backoff_doubles_from_the_first_wait_up_to_the_cap():
    from modeldeploy.backoff import capped_backoff
    assert [capped_backoff(0.5, 3.0, attempt) for attempt in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_passes_that_never_suspend_still_let_the_loop_run_between_them():
    # A steady full resync: no pass makes a request, so none awaits anything.
    # Seen at 3,000 models: every pass ran in one turn of the loop and timers
    # (the liveness probe, watch events) waited 5.3 s.
    async def main():
        done = []

        async def plan_only(key):
            done.append(key)

        queue = ReconcileQueue(plan_only, concurrency=4)
        for key in range(400):
            queue.add(key)
        seen_by_timer = []
        asyncio.get_running_loop().call_soon(lambda: seen_by_timer.append(len(done)))
        await settled(queue)
        assert len(done) == 400
        assert seen_by_timer and seen_by_timer[0] <= 8, \
            f"a callback scheduled with the passes waited for {seen_by_timer} of them"
        await queue.close()
    run(main())


def test_a_key_cancelled_in_the_turn_it_got_a_free_slot_gives_the_slot_back():
    async def main():
        rec = Recorder()
        queue = ReconcileQueue(rec, concurrency=1)
        queue.add("a")
        await asyncio.sleep(0)  # "a" took the free slot and yields one turn
        for task in list(queue._tasks):
            task.cancel()
        await asyncio.sleep(0)
        queue.add("b")
        await settled(queue)
        assert rec.keys() == ["b"], "the slot was not lost with the cancelled key"
        await queue.close()
    run(main())
