"""Waiting on the cluster: poll a condition until a deadline, never sleep a
fixed time. On timeout the failure says what was last seen."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

POLL_SECONDS = 0.2


class WaitTimeout(AssertionError):
    pass


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float,
    what: str,
    describe: Callable[[], object] | None = None,
) -> T:
    """Call ``probe`` until it returns a truthy value and return that value.

    ``describe`` (default: the last probe result or error) is shown when the
    deadline passes, so a failing test tells what the cluster looked like.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = probe()
        except Exception as exc:  # the object may not exist yet: keep polling
            last = exc
        else:
            if last:
                return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            seen = describe() if describe else last
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {seen!r}")
        time.sleep(POLL_SECONDS)


def holds_for(
    probe: Callable[[], bool],
    *,
    seconds: float,
    what: str,
    describe: Callable[[], object] | None = None,
) -> None:
    """Assert that ``probe`` stays true for a whole window (e.g. "never
    becomes Ready"), checking all the way through rather than once at the end."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not probe():
            seen = describe() if describe else None
            raise AssertionError(f"expected {what} to hold for {seconds:.0f}s, but it broke; seen: {seen!r}")
        time.sleep(POLL_SECONDS)
