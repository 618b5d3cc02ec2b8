"""kopf handlers: a few lines each. Watch events feed the in-memory cache and
enqueue the owning ModelDeployment; the controller does the rest.

No handler here is change-detecting (on.create/on.update), so kopf keeps no
per-object progress and writes nothing of its own: a steady state costs no
request. kopf's storages are still given our prefix in case one is added.
"""
from __future__ import annotations

import logging

import kopf

from .api import GROUP, PLURAL, VERSION
from .builders.labels import MANAGED_BY
from .controller import Controller
from .kube.peering import PeeringGate
from .kube.writing import LIST_PAGE_SIZE
from .reconcile.kinds import CHILD_RESOURCES
from .settings import OperatorSettings

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}
# How long kopf's per-object worker outlives its last event (see start()).
KOPF_WORKER_IDLE_SECONDS = 0.2
log = logging.getLogger(__name__)


class NoEssence(kopf.DiffBaseStorage):
    """kopf builds every watch event's "essence" (a deep copy of the whole
    object, status included) to diff it against the last handled one. Only
    on.create/update/resume/delete handlers and daemons use that diff; this
    operator registers event handlers only (test_handlers.py keeps it so), so
    it builds, stores and fetches nothing. The copies were 6% of the main
    thread's CPU while 1,000 models rolled out (py-spy)."""

    def build(self, *, body, extra_fields=None):
        return None

    def fetch(self, *, body):
        return None

    def store(self, *, body, patch, essence) -> None:
        return None


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoEssence()
    settings.posting.level = logging.WARNING  # routine progress is not an Event
    settings.watching.reconnect_backoff = 1.0
    settings.watching.server_timeout = 270  # re-list before the server's own timeout
    # kopf's own listings (at start, and after a watch's 410) read pages of
    # 500: at 10,000 models one unpaged list of 30,000 Services is a few
    # hundred MiB of parsed JSON at once, which a Python process keeps as its
    # high-water mark (the warm-up reads pages too: kube/warmup.py).
    settings.watching.chunk_size = LIST_PAGE_SIZE
    settings.networking.error_backoffs = [1, 2, 5, 10]
    # kopf runs a worker per object that keeps the last raw event it handled
    # until it exits, idle_timeout after that event (default 5 s): a listing
    # of 10,000 pods handled within 5 s keeps every raw pod alive at once, the
    # process's high-water mark of memory (Python keeps what it grew to).
    settings.queueing.idle_timeout = KOPF_WORKER_IDLE_SECONDS
    ours = OperatorSettings()
    # Peering (--peering): how soon a standby replica takes over, and no log
    # line per keep-alive.
    settings.peering.lifetime = ours.peering_lifetime
    settings.peering.stealth = True
    gate = None if settings.peering.standalone else PeeringGate(
        name=settings.peering.name, priority=settings.peering.priority, clusterwide=settings.peering.clusterwide,
        mandatory=settings.peering.mandatory)
    memo.controller = Controller(ours, peering=gate)
    await memo.controller.start()


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_) -> None:
    await memo.controller.stop()


# The liveness endpoint (`run --liveness URL`) doubles as a small progress
# report that the tests and `make demo` read (`modeldeploy status` reads the
# ModelDeployment, not this): kopf serves each probe's value under its id,
# from the first request after the startup handlers ran (so `ready` is true
# from the first answer on), and caches the values for 10 seconds.
@kopf.on.probe(id="ready")
async def probe_ready(memo: kopf.Memo, **_) -> bool:
    return memo.controller.started


@kopf.on.probe(id="reconciles")
async def probe_reconciles(memo: kopf.Memo, **_) -> int:
    return memo.controller.queue.passes


@kopf.on.probe(id="resyncs")
async def probe_resyncs(memo: kopf.Memo, **_) -> int:
    return memo.controller.resyncs


@kopf.on.probe(id="idle")
async def probe_idle(memo: kopf.Memo, **_) -> bool:
    return memo.controller.queue.idle


@kopf.on.event(GROUP, VERSION, PLURAL)
async def model_event(event: kopf.RawEvent, memo: kopf.Memo, **_) -> None:
    memo.controller.on_model_event(event["type"], event["object"])


async def child_event(event: kopf.RawEvent, memo: kopf.Memo, **_) -> None:
    memo.controller.on_child_event(event["type"], event["object"])


# Every kind in the one registry (builders and traffic providers declare
# theirs). Routes are only served where their CRDs are installed: kopf waits
# for them.
for _kind in CHILD_RESOURCES:
    kopf.on.event(_kind.group, _kind.version, _kind.plural, labels=MANAGED)(child_event)


# The model pods (the pod template carries the managed-by label): readiness,
# restarts and waiting reasons of every serving pod, without a list per pass.
@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_) -> None:
    memo.controller.on_pod_event(event["type"], event["object"])
