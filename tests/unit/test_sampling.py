"""The background recorder the cluster tests sample routes and pods with."""
from __future__ import annotations

from support.sampling import ChangeRecorder
from support.waiting import wait_until


def test_a_change_after_the_last_background_read_is_still_recorded_at_exit():
    # Under CI load a read through kubectl takes a second: the state a test's
    # last wait ended on came after the thread's last read, and the sequence
    # it asserted on lacked its end (the route's final 100/0, twice in CI).
    value = {"now": "50/50"}
    with ChangeRecorder(lambda: value["now"], period=60) as recorder:
        wait_until(lambda: recorder.seen, timeout=5, what="the first background read")
        value["now"] = "100/0"
    assert recorder.seen == ["50/50", "100/0"]


def test_a_read_failing_at_exit_is_retried_until_one_succeeds():
    reads = iter(["50/50", RuntimeError("the route moved during the sample"), "0/100"])

    def read():
        got = next(reads)
        if isinstance(got, Exception):
            raise got
        return got
    with ChangeRecorder(read, period=60) as recorder:
        wait_until(lambda: recorder.seen, timeout=5, what="the first background read")
    assert recorder.seen == ["50/50", "0/100"]
