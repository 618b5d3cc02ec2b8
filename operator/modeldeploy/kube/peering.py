"""May this replica act? kopf's peering rule, asked by the controller itself.

With `modeldeploy run --peering NAME --priority N`, every replica keeps a
keep-alive record {priority, lifetime, lastseen} in the status of the kopf
peering object (a KopfPeering NAME in each watched namespace, or the
ClusterKopfPeering NAME for an all-namespaces operator). kopf pauses a
replica's watch streams while a live peer of higher priority is registered,
or another of the same priority.

kopf's pause stops only what kopf runs. The controller's own reconcile
queue, its requeue timers (pauses, analysis intervals, progress polls) and its
resync loop go on, working from a cache frozen at the moment of the pause: a
standby that had been acting would keep driving its rollouts from stale state
next to the active replica. So every reconcile first asks this gate, which
applies the same rule to the same records.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from kubernetes.client.exceptions import ApiException

from ..api.times import parse_time_or_none

log = logging.getLogger(__name__)

GROUP_VERSION = "kopf.dev/v1"
# kopf assumes this lifetime for records that do not state one.
DEFAULT_LIFETIME = 60


def blocking_peers(records: dict, priority: int, now: datetime) -> list[str]:
    """Identities of the live peers that make a replica of `priority` pause:
    any of higher priority; of the same priority, when there are two or more
    (this replica is one of them: kopf pauses them all). Pure."""
    live = []
    for identity, record in (records or {}).items():
        if not isinstance(record, dict):
            continue
        seen = parse_time_or_none(record.get("lastseen"))
        lifetime = record.get("lifetime", DEFAULT_LIFETIME)
        if seen is None or not isinstance(lifetime, (int, float)) or seen + timedelta(seconds=lifetime) <= now:
            continue
        live.append((identity, record.get("priority", 0)))
    higher = [identity for identity, p in live if isinstance(p, (int, float)) and p > priority]
    same = [identity for identity, p in live if p == priority]
    return higher or (same if len(same) >= 2 else [])


class PeeringGate:
    """Answers "may this replica act in `namespace` now?" from the peering
    object, read at most once per `ttl` seconds per object."""

    def __init__(self, *, name: str, priority: int, clusterwide: bool, mandatory: bool = True,
                 ttl: float = 1.0) -> None:
        self.name, self.priority, self.clusterwide, self.ttl = name, priority, clusterwide, ttl
        # Without its peering object kopf stays paused when peering was asked
        # for (--peering), and runs standalone when it only auto-detects.
        self.mandatory = mandatory
        self._answers: dict[str, tuple[float, bool]] = {}

    def _path(self, namespace: str) -> str:
        if self.clusterwide:
            return f"/apis/{GROUP_VERSION}/clusterkopfpeerings/{self.name}"
        return f"/apis/{GROUP_VERSION}/namespaces/{namespace}/kopfpeerings/{self.name}"

    async def active(self, namespace: str, kube) -> bool:
        path = self._path(namespace)
        cached = self._answers.get(path)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        try:
            body = await kube.get(path, kind="KopfPeering")
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = None
        blockers = [] if body is None else blocking_peers(body.get("status") or {}, self.priority,
                                                          datetime.now(timezone.utc))
        answer = not self.mandatory if body is None else not blockers
        if cached is not None and cached[1] != answer:
            log.info("%s in %s: %s", "acting" if answer else "standing by", path,
                     "no live peer of higher priority" if answer else f"live peers {blockers or 'unknown (no peering object)'}")
        self._answers[path] = (time.monotonic(), answer)
        return answer
