"""Watching a value change in the background for the length of a test, so
assertions can see every state something went through, not only the last;
and watching many objects at once for the moment each reached a state (the
benchmark's latencies)."""
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

    def _sample(self) -> bool:
        """One read, kept if it differs from the last value kept; False if it failed."""
        try:
            value = self._read()
        except Exception:
            return False
        if not self.seen or self._key(value) != self._key(self.seen[-1]):
            self.seen.append(value)
            self.times.append(time.time())
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._period)

    def first_time(self, predicate: Callable[[T], bool]) -> float:
        return next(t for v, t in zip(self.seen, self.times) if predicate(v))

    def __enter__(self) -> "ChangeRecorder[T]":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        # The state the test's last wait ended on: a change that landed after
        # the thread's last read (a read can take a second under load) is
        # kept too. A read may fail for a moment (PoolSampler's, while the
        # route moves): retried for a few seconds.
        deadline = time.monotonic() + 5
        while not self._sample() and time.monotonic() < deadline:
            threading.Event().wait(min(self._period, 0.1))


class FirstTimes:
    """Watches a collection through the API (``list_fn`` with ``args``, a
    kubernetes ``watch``) in the background: keeps each object's latest
    state by ``key`` and the first wall-clock time ``predicate`` held for
    it, e.g. when each of N Deployments became Available. A watch that ends
    or fails is started again."""

    def __init__(self, list_fn: Callable, args: tuple, predicate: Callable[[dict], bool],
                 key: Callable[[dict], str] = lambda o: o["metadata"]["name"]):
        self.seen: dict[str, float] = {}
        self.objects: dict[str, dict] = {}
        self._list, self._args, self._predicate, self._key = list_fn, args, predicate, key
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from kubernetes import client, watch

        # Each watch after the first resumes where the last one ended: a
        # watch begun without a resourceVersion re-sends every object, which
        # at 10,000 of them every 30 s costs the API server and this process
        # more than the benchmark it measures.
        version = None
        while not self._stop.is_set():
            try:
                resume = {"resource_version": version} if version else {}
                for event in watch.Watch().stream(self._list, *self._args, timeout_seconds=30, _request_timeout=40,
                                                  **resume):
                    obj = event["object"]
                    if not isinstance(obj, dict):
                        obj = client.ApiClient().sanitize_for_serialization(obj)
                    version = obj.get("metadata", {}).get("resourceVersion") or version
                    name = self._key(obj)
                    self.objects[name] = obj
                    if name not in self.seen and self._predicate(obj):
                        self.seen[name] = time.time()
                    if self._stop.is_set():
                        break
            except Exception:
                version = None  # e.g. 410 Gone: the next watch lists everything again
                time.sleep(0.2)

    def start(self) -> "FirstTimes":
        self._thread.start()
        return self

    def stop(self) -> None:
        """The thread ends at the next event or when the watch times out
        (not waited for)."""
        self._stop.set()

    def __enter__(self) -> "FirstTimes":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
