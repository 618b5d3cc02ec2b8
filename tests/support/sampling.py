"""Watching a value change in the background for the length of a test, so
assertions can see every state something went through, not only the last."""
from __future__ import annotations

import threading
import time
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class ChangeRecorder(Generic[T]):
    """Calls ``read`` every ``period`` seconds and keeps each value that
    differs (by ``key``) from the one before, with the wall-clock time it was
    first seen. A read that fails (the object does not exist yet) is skipped."""

    def __init__(self, read: Callable[[], T], key: Callable[[T], Hashable] = lambda v: v, period: float = 0.1):
        self.seen: list[T] = []
        self.times: list[float] = []
        self._read, self._key, self._period = read, key, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = object()
        while not self._stop.is_set():
            try:
                value = self._read()
                if self._key(value) != last:
                    last = self._key(value)
                    self.seen.append(value)
                    self.times.append(time.time())
            except Exception:
                pass
            self._stop.wait(self._period)

    def first_time(self, predicate: Callable[[T], bool]) -> float:
        return next(t for v, t in zip(self.seen, self.times) if predicate(v))

    def __enter__(self) -> "ChangeRecorder[T]":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
