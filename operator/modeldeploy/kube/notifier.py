"""Delivery of rollout notifications: a bounded queue and one worker per
endpoint, retries with capped exponential backoff, a timeout per attempt.

The reconcile only calls submit(), which never waits: it puts the body on the
endpoint's queue (or drops it, counted, when that queue is full). A slow or
dead endpoint delays only its own queue; its notifications keep their order.

Semantics (README "Notifications"): the controller submits a notification
after the status write that records its transition, and the next pass --
in this process or in one started later -- reads that status and finds the
transition no more. So a restart between transitions sends nothing twice.
What is queued or being retried when the process dies is lost (at most once
across a crash); within a process an attempt whose answer is lost is sent
again (at least once across a lost answer), with the same `id`.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from .. import metrics
from ..notify import NotifyConfig, backoff_delays, json_body, load_config
from ..settings import OperatorSettings

log = logging.getLogger(__name__)

# POST (url, body, headers, timeout) -> HTTP status; raises on a transport error.
Transport = Callable[[str, bytes, Mapping[str, str], float], Awaitable[int]]
Sleep = Callable[[float], Awaitable[None]]

USER_AGENT = "modeldeploy-operator/notifications"
# Status codes worth another attempt among the 4xx: every other 4xx is the
# request's fault and would fail the same way again.
RETRIED_4XX = (408, 425, 429)
# At shutdown, how long queued notifications may still go out.
STOP_GRACE_SECONDS = 5.0


class Notifier:
    def __init__(self, config: NotifyConfig, *, transport: Transport | None = None,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.config = config
        self._transport = transport
        self._sleep = sleep
        self._session = None
        self._queues: dict[str, asyncio.Queue] = {}
        self._tasks: list[asyncio.Task] = []

    @classmethod
    def from_settings(cls, settings: OperatorSettings) -> Notifier | None:
        """None without a config (`modeldeploy run` has checked it parses)."""
        config = read_config(settings)
        return None if config is None else cls(config)

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(self.config.endpoints)

    async def drain(self) -> None:
        """Until nothing is queued or being delivered."""
        await asyncio.gather(*(queue.join() for queue in self._queues.values()))

    async def start(self) -> None:
        if self._transport is None:
            import aiohttp  # kopf's own HTTP client

            self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
            self._transport = self._post
        loop = asyncio.get_running_loop()
        for name in self.config.endpoints:
            self._queues[name] = asyncio.Queue(maxsize=self.config.queue_size)
            self._tasks.append(loop.create_task(self._work(name), name=f"notify-{name}"))

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        if self._queues:
            try:
                await asyncio.wait_for(self.drain(), grace)
            except asyncio.TimeoutError:
                pass
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for name, queue in self._queues.items():
            while not queue.empty():
                body = queue.get_nowait()
                metrics.NOTIFICATIONS.labels(name, body["event"], "dropped").inc()
        if self._session is not None:
            await self._session.close()

    def submit(self, endpoint: str, body: Mapping[str, Any]) -> bool:
        """Queue `body` for `endpoint`; never waits. False: not queued (no
        such endpoint, or its queue is full: dropped and counted)."""
        queue = self._queues.get(endpoint)
        if queue is None:
            return False
        try:
            queue.put_nowait(body)
        except asyncio.QueueFull:
            metrics.NOTIFICATIONS.labels(endpoint, body["event"], "dropped").inc()
            log.warning("notification %s to %s dropped: %d waiting already", body["id"], endpoint, queue.qsize())
            return False
        return True

    async def _work(self, name: str) -> None:
        queue = self._queues[name]
        while True:
            body = await queue.get()
            try:
                await self.deliver(name, body)
            except Exception:  # never let one notification end the worker
                log.exception("notification %s to %s", body.get("id"), name)
            finally:
                queue.task_done()

    async def deliver(self, name: str, body: Mapping[str, Any]) -> bool:
        """Attempts until one is answered 2xx, a 4xx says no retry can help,
        or the policy's attempts are spent. True when delivered."""
        endpoint = self.config.endpoints[name]
        payload = json.dumps(json_body(body, endpoint.format)).encode()
        headers = {"Content-Type": "application/json", **endpoint.headers}
        delays = backoff_delays(self.config.retry)
        for attempt in range(self.config.retry.max_attempts):
            permanent = False
            try:
                status = await asyncio.wait_for(self._transport(endpoint.url, payload, headers,
                                                                endpoint.timeout_seconds), endpoint.timeout_seconds)
            except asyncio.TimeoutError:
                reason = "timeout"
            except Exception as exc:  # connection refused, DNS, TLS, a reset
                reason = type(exc).__name__
            else:
                if 200 <= status < 300:
                    metrics.NOTIFICATIONS.labels(name, body["event"], "delivered").inc()
                    return True
                reason = f"http-{status}"
                permanent = 400 <= status < 500 and status not in RETRIED_4XX
            metrics.NOTIFICATION_ATTEMPT_FAILURES.labels(name, reason).inc()
            if permanent or attempt == len(delays):
                break
            await self._sleep(delays[attempt])
        metrics.NOTIFICATIONS.labels(name, body["event"], "failed").inc()
        log.warning("notification %s to %s failed after %d attempt(s): %s", body["id"], name, attempt + 1, reason)
        return False

    async def _post(self, url: str, payload: bytes, headers: Mapping[str, str], timeout: float) -> int:
        import aiohttp

        async with self._session.post(url, data=payload, headers=dict(headers),
                                      timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            await resp.read()
            return resp.status


def read_config(settings: OperatorSettings) -> NotifyConfig | None:
    """The endpoints the settings name; None when they name none. Raises
    OSError or ConfigError, which `modeldeploy run` reports before starting
    (kopf would retry a failing startup handler for ever)."""
    if settings.notify_config:
        text, source = Path(settings.notify_config).read_text(), settings.notify_config
    elif settings.notify_endpoints:
        text, source = settings.notify_endpoints, "MODELDEPLOY_NOTIFY_ENDPOINTS"
    else:
        return None
    config = load_config(text, source=source)
    log.info("notifications: %d endpoint(s) from %s: %s", len(config.endpoints), source,
             ", ".join(f"{name} ({ep.format})" for name, ep in config.endpoints.items()) or "none")
    return config
