"""The controller: observe -> plan -> write -> report, and nothing else.

    observe  the ModelDeployment, its children, its neighbours' names and its
             pods, all from the watch cache (no request)
    plan     reconcile.plan(): every decision, pure
    write    server-side apply what differs, prune what is no longer wanted
    report   the status once (only when it changed), then consume the
             promote/abort annotations it recorded, then the Events

What stays here is I/O: the queue, the peering gate, a namespace being
deleted, and turning a 422 from the API server into a fact for the plan.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable

from kubernetes.client.exceptions import ApiException

from . import metrics
from .api.status import Stage
from .api.times import parse_time_or_none
from .kube.cache import Cache, Key, pod_owner
from .kube.clients import USER_AGENT, make_api_client
from .kube.notifier import Notifier
from .kube.peering import PeeringGate
from .kube.prometheus import run_plan
from .kube.queue import ReconcileQueue
from .kube.registry import Registry, RegistryConfig
from .kube.resources import CHILD_KINDS, MODEL_DEPLOYMENT
from .kube.warmup import matches, warm
from .kube.writing import Kube
from .notify import notification, read_subscription, transitions
from .reconcile.drift import HANDOVER_MANAGER
from .reconcile.plan import Plan, plan
from .reconcile.shards import parse_shard
from .reconcile.world import World
from .rollout.admission import CanarySlots
from .runtimes import load_runtime_table
from .settings import OperatorSettings
from .status.observed import model_cache_result

log = logging.getLogger(__name__)

# A namespace being deleted takes a while to empty; a namespace of the same
# name created again later is served again after this long.
TERMINATING_NAMESPACE_QUIET_SECONDS = 30.0
# A status write refused because the ModelDeployment changed since the pass
# read it: planned again at once, from the copy read back.
STALE_READ_RETRY_SECONDS = 0.0
# How far ahead of other waiting passes a model with no children yet goes:
# a burst of new models is served first, but no other pass (a canary's next
# step, a crash loop seen) waits more than this longer than in plain order.
NEW_MODEL_HEAD_START_SECONDS = 30.0


class Controller:
    # Rollout notifications; None: no endpoints configured. (A class default
    # too: the fake cluster's controller is built without __init__.)
    notifier: Notifier | None = None
    # models:/ URIs: the MLflow registry's answers, cached (kube/registry.py).
    registry: Registry | None = None

    def __init__(self, settings: OperatorSettings, kube: Kube | None = None,
                 peering: PeeringGate | None = None, notifier: Notifier | None = None) -> None:
        self.settings = settings
        # With kopf peering: asked before every pass, so a paused replica's
        # own timers and resync do not act on its frozen cache.
        self.peering = peering
        self.table = load_runtime_table(settings.runtime_table)
        # `run --shard I/N`: only the ModelDeployments of this shard are
        # cached and reconciled; every other watch event is dropped on arrival.
        self.shard = parse_shard(settings.shard) if settings.shard else None
        agent = f"{USER_AGENT} shard {self.shard}" if self.shard else USER_AGENT
        self.kube = kube or Kube(make_api_client(settings.kubeconfig, pool_size=settings.api_workers,
                                                 user_agent=agent), workers=settings.api_workers)
        self.cache = Cache(owns=_ours(settings.namespaces, self.shard))
        self.notifier = notifier if notifier is not None else Notifier.from_settings(settings)
        self.registry = Registry(RegistryConfig(
            tracking_uri=settings.mlflow_tracking_uri, token=settings.mlflow_tracking_token,
            username=settings.mlflow_tracking_username, password=settings.mlflow_tracking_password),
            executor=self.kube.pool)
        # A model with no children yet goes ahead of other models' passes
        # (most of them status refreshes): in a burst of new models, each
        # gets its Deployment before the first ones' pods are reported on.
        self.queue = ReconcileQueue(self.reconcile, concurrency=settings.concurrency,
                                    urgent=self._has_no_children, head_start=NEW_MODEL_HEAD_START_SECONDS)
        self.started = False
        self.resyncs = 0
        self._tasks: list[asyncio.Task] = []
        # Namespaces found terminating, until when to leave them alone.
        self._terminating: dict[str, float] = {}
        # The rollout stage (and since when) each ModelDeployment's last pass
        # left it in: canary slots are shared from these, not from statuses
        # whose writes may still be on their way (two passes at once must not
        # both take the last slot). Models not planned yet count by status.
        self._stages: dict[Key, tuple[str, datetime | None]] = {}

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        # Before any pass, and before kopf starts its watches (start() runs in
        # its startup handler): a pass planned from a half-filled cache acts
        # on a world that is not there (kube/warmup.py).
        if self.shard:
            log.info("shard %s: reconciling only the ModelDeployments whose sha256(namespace/name) mod %d is %d",
                     self.shard, self.shard.count, self.shard.index)
        began = time.perf_counter()
        found = await warm(self.kube, self.cache, self.settings.namespaces)
        log.info("cache filled before the first pass in %.2fs: %s", time.perf_counter() - began,
                 ", ".join(f"{n} {kind}" for kind, n in found.items()) or "nothing yet")
        if self.notifier is not None:
            await self.notifier.start()
        loop = asyncio.get_running_loop()
        lag = metrics.watch_loop_lag(gc_freeze=self.settings.gc_freeze, gc_thaw_seconds=self.settings.gc_thaw_seconds)
        self._tasks = [loop.create_task(self._resync_forever()), loop.create_task(lag)]
        self.started = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.queue.close()
        if self.notifier is not None:
            await self.notifier.stop()
        self.kube.close()

    async def _resync_forever(self) -> None:
        # A full pass now and then catches anything a watch could have missed.
        # In a steady state it writes nothing, so it is cheap to keep.
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            began = time.perf_counter()
            for key in list(self.cache.models):
                self.queue.add(key)
            while not self.queue.idle:
                await asyncio.sleep(0.05)
            metrics.RESYNC_SECONDS.set(time.perf_counter() - began)
            self.resyncs += 1

    def _has_no_children(self, key: Key) -> bool:
        return key in self.cache.models and not self.cache.children.get(key)

    # -- watch events ------------------------------------------------------
    def on_model_event(self, kind: str | None, body: dict) -> None:
        meta = body["metadata"]
        if not self.cache.owns((meta["namespace"], meta["name"])):
            return  # another shard's
        if kind == "DELETED":
            self.cache.drop_model(meta["namespace"], meta["name"])
            metrics.forget_model(meta["namespace"], meta["name"])
            self._remember((meta["namespace"], meta["name"]), None)
            return
        # A listing (kind None: kopf's first one, or a re-list after a
        # watch error) plans every model once; a watch event plans only a
        # change: the echo of our own status write (already stored from its
        # response) would cost a pass that finds nothing to do.
        if self.cache.put_model(body) or kind is None:
            self.queue.add((meta["namespace"], meta["name"]))

    def on_child_event(self, kind: str | None, body: dict) -> None:
        key = self.cache.drop_child(body) if kind == "DELETED" else self.cache.put_child(body)
        if key is not None and key in self.cache.models:
            self.queue.add(key)

    def on_pod_event(self, kind: str | None, body: dict) -> None:
        # Pods are watched (not listed per pass) so that a crash loop or a
        # readiness flip on a settled revision is noticed at once, at the
        # cost of one cache update per pod change; only a change of what the
        # plan reads (readiness, restarts, waiting reasons) costs a pass.
        owner = pod_owner(body)
        if owner is not None and not self.cache.owns(owner):
            return  # another shard's model: not cached, not counted here
        key = self.cache.drop_pod(body) if kind == "DELETED" else self.cache.put_pod(body)
        if key is not None and key in self.cache.models:
            self.queue.add(key)
        # spec.model.cache: counted from the initializer's termination
        # message; kopf gives a listing's objects no event type.
        uid = body.get("metadata", {}).get("uid", "")
        if kind == "DELETED":
            metrics.forget_pod(uid)
        else:
            metrics.count_model_cache(uid, model_cache_result(body), listed=kind is None)

    # -- the reconcile -----------------------------------------------------
    async def reconcile(self, key: Key) -> float | None:
        if self._terminating.get(key[0], 0.0) > time.monotonic():
            # Its namespace is being deleted: the children go first and their
            # DELETED events would make us re-apply them, each write refused.
            return None
        started = time.perf_counter()
        metrics.QUEUE_DEPTH.inc()
        try:
            requeue = await self._reconcile(key)
        except ApiException as exc:
            if _namespace_going_away(exc):
                self._terminating[key[0]] = time.monotonic() + TERMINATING_NAMESPACE_QUIET_SECONDS
                metrics.RECONCILES.labels("ok").inc()
                return None  # its ModelDeployments go with it; nothing to converge
            metrics.RECONCILES.labels("error").inc()
            metrics.RECONCILE_ERRORS.labels(f"http-{exc.status}").inc()
            raise
        except Exception as exc:
            metrics.RECONCILES.labels("error").inc()
            metrics.RECONCILE_ERRORS.labels(type(exc).__name__).inc()
            raise
        finally:
            metrics.QUEUE_DEPTH.dec()
            metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        metrics.RECONCILES.labels("ok").inc()
        return requeue

    async def _reconcile(self, key: Key) -> float | None:
        """observe -> plan -> write -> report; every decision is plan()'s."""
        md = self.cache.models.get(key)
        if md is None or md["metadata"].get("deletionTimestamp"):
            if self.registry is not None:
                self.registry.forget(key)
            return None  # owner references let the garbage collector remove the children
        if self.peering is not None and not await self.peering.active(key[0], self.kube):
            # Another replica acts. When kopf resumes this one, its re-list
            # enqueues every ModelDeployment again, from fresh copies.
            return None
        world = self._observe(key, md)
        if self.registry is not None:
            world = replace(world, registry=await self.registry.lookup(key, md))
        step = plan(world)
        if step.queries is not None:
            world = replace(world, analysis=await run_plan(step.queries, self.kube.pool))
            step = plan(replace(world, canary_slots=self._slots()))
        self._take_slot(key, step)
        try:
            await self._write_children(step)
        except ApiException as exc:
            refused = _refusal(exc)
            if refused is None:
                raise
            # The API server refuses a child built from this spec (e.g. an
            # environment variable name it does not accept, or a kind whose
            # CRDs are not installed). Retrying the same writes cannot fix
            # that: plan again knowing it, which holds everything as it is,
            # from the cache as the writes that did land left it (a pass can
            # scale stable before the canary's apply is refused). The next
            # full resync tries again (someone may install the CRDs).
            seen = self._observe(key, md)
            step = plan(replace(world, children=seen.children, neighbours=seen.neighbours, pods=seen.pods,
                                refused=refused, canary_slots=self._slots()))
            self._take_slot(key, step)
        if not await self._report(md, step):
            return STALE_READ_RETRY_SECONDS
        self._remember(key, step)
        again = self.registry.due_in(key, md) if self.registry is not None else None
        return again if step.requeue_after is None else min(step.requeue_after, again or step.requeue_after)

    def _observe(self, key: Key, md: dict) -> World:
        return World(model=md, children=self.cache.children_of(key), neighbours=self.cache.neighbours_of(key[0]),
                     pods=self.cache.pods_of(key), now=datetime.now(timezone.utc), table=self.table,
                     write_unchanged=not self.settings.skip_unchanged_writes, canary_slots=self._slots())

    # -- canary slots (--max-concurrent-canaries) ---------------------------
    def _slots(self) -> CanarySlots | None:
        limit = self.settings.max_concurrent_canaries
        if not limit:
            return None
        in_flight, queued = set(), []
        for key, md in self.cache.models.items():
            stage, since = self._stages.get(key) or _recorded_stage(md)
            name = f"{key[0]}/{key[1]}"
            if stage in IN_FLIGHT:
                in_flight.add(name)
            elif stage == Stage.QUEUED.value and since is not None:
                queued.append((since, name))
        return CanarySlots(limit=limit, in_flight=frozenset(in_flight), queued=tuple(queued))

    def _take_slot(self, key: Key, step: Plan) -> None:
        """Right after plan(), before any await: a canary that starts holds
        its slot at once, so no pass planned meanwhile can take it too. A
        canary that ends keeps its slot until the pass's writes have landed
        (_remember): its canary Deployment is pruned by then."""
        before = self._stages.get(key)
        leaving = before is not None and before[0] in IN_FLIGHT and step.stage not in IN_FLIGHT
        if step.stage is not None and not leaving:
            self._stages[key] = (step.stage, step.stage_since)

    def _remember(self, key: Key, step: Plan | None) -> None:
        """Keep where `key`'s rollout stands; when it leaves a slot, the
        ones waiting are planned again at once (their own requeue is the
        backstop)."""
        before = self._stages.get(key)
        if step is None:
            self._stages.pop(key, None)
        elif step.stage is not None:
            self._stages[key] = (step.stage, step.stage_since)
        else:
            return  # held (an invalid spec): nothing moved
        after = self._stages.get(key)
        if before and before[0] in IN_FLIGHT and not (after and after[0] in IN_FLIGHT):
            for other, (stage, _) in list(self._stages.items()):
                if stage == Stage.QUEUED.value:
                    self.queue.add(other)

    async def _write_children(self, step: Plan) -> None:
        # Handover first (replicas to the HPA), then the applies, then the
        # prunes: the route has moved traffic off the canary before its
        # Deployment goes.
        for manifest in step.handover:
            try:
                self.cache.put_child(await self.kube.apply(manifest, field_manager=HANDOVER_MANAGER, force=False))
            except ApiException as exc:
                if exc.status != 409:
                    raise
                # Another manager (the HPA) already set replicas: it owns the
                # count, and our apply without replicas leaves it alone.
        for manifest in step.apply:
            try:
                self.cache.put_child(await self.kube.apply(manifest))
            except ApiException as exc:
                exc.child = manifest  # which child (a 404 for a kind not served names none): _refusal
                raise
        namespace = step.desired[0]["metadata"]["namespace"] if step.desired else None
        for kind, name in step.prune:
            body = self.cache.neighbours_of(namespace).get((kind, name))
            await self.kube.delete(CHILD_KINDS[kind], namespace, name)
            if body is not None:
                self.cache.drop_child(body)

    async def _report(self, md: dict, step: Plan) -> bool:
        """Record first, then consume: the status that records a decision is
        written (and announced) before the annotation that asked for it is
        removed, so a lost status write never loses a promote or an abort, and
        a lost annotation patch never loses the Event. False: the status was
        planned from a copy older than the ModelDeployment now is, and the API
        server refused it; nothing of the pass is recorded or announced."""
        meta = md["metadata"]
        if step.status is not None:
            try:
                written = await self.kube.apply_status(meta["namespace"], meta["name"], step.status,
                                                       resource_version=meta.get("resourceVersion"))
            except ApiException as exc:
                if exc.status == 404:
                    return True  # deleted meanwhile
                if exc.status == 409:
                    # Read it back rather than wait for its watch event: a
                    # watch that lags (or hangs until kopf re-lists) must not
                    # hold the rollout.
                    log.info("%s/%s: changed since this pass read it (resourceVersion %s): its status is not "
                             "written; planning again", meta["namespace"], meta["name"], meta.get("resourceVersion"))
                    self.cache.put_model(await self.kube.get(MODEL_DEPLOYMENT.path(meta["namespace"], meta["name"]),
                                                             kind=MODEL_DEPLOYMENT.kind))
                    return False
                raise
            self.cache.put_model(written)
            metrics.track_model(meta["namespace"], meta["name"], step.status)
        # Queued once the status that records the transitions is written, and
        # before anything else this pass does can fail (the scale call). A
        # notification never fails a reconcile.
        try:
            self._notify(md, step)
        except Exception:
            log.exception("%s/%s: notifications of this pass not queued", meta["namespace"], meta["name"])
        if step.scale is not None:
            # The scale's answer is no ModelDeployment: the watch brings the new spec.
            await self.kube.scale(meta["namespace"], meta["name"], step.scale)
        for event in step.events:
            await self.kube.event(md, type=event.type, reason=event.reason, message=event.message)
        if step.consume:
            updated = await self.kube.patch_metadata(MODEL_DEPLOYMENT, meta["namespace"], meta["name"],
                                                     {"annotations": {n: None for n in step.consume}})
            self.cache.put_model(updated)
        for result in step.outcomes:
            metrics.ROLLOUTS.labels(result).inc()
        for verdict in step.verdicts:
            metrics.VERDICTS.labels(verdict).inc()
        for outcome in step.check_outcomes:  # smoke-test checks (rollout/smoke.py)
            metrics.CHECK_OUTCOMES.labels(outcome).inc()
        return True

    def _notify(self, md: dict, step: Plan) -> None:
        """Queue a notification for each transition this pass recorded (its
        status is written by now) that the ModelDeployment subscribed to.
        Never waits for a delivery."""
        if self.notifier is None:
            return
        meta = md["metadata"]
        subscription = read_subscription(meta.get("annotations"))
        if subscription is None:
            return
        found = [t for t in transitions(md.get("status"), step.status, step.events) if subscription.wants(t.event)]
        if not found:
            return
        unknown = [e for e in subscription.endpoints if e not in self.notifier.endpoints]
        if unknown or subscription.unknown_events:
            log.warning("%s/%s: notification endpoints not in the operator's config (it has %s): %s; "
                        "not events: %s", meta["namespace"], meta["name"], ", ".join(self.notifier.endpoints) or "none",
                        ", ".join(unknown) or "none", ", ".join(subscription.unknown_events) or "none")
        status = step.status if step.status is not None else (md.get("status") or {})
        for transition in found:
            body = notification(transition, namespace=meta["namespace"], name=meta["name"], uid=meta.get("uid"),
                                status=status)
            for endpoint in subscription.endpoints:
                if endpoint not in unknown:
                    self.notifier.submit(endpoint, body)


IN_FLIGHT = (Stage.CANARY.value, Stage.PROMOTING.value)


def _recorded_stage(md: dict) -> tuple[str | None, datetime | None]:
    """A model this process has not planned yet: where its status says it stands."""
    rollout = (md.get("status") or {}).get("rollout") or {}
    return rollout.get("stage"), parse_time_or_none(rollout.get("stepStartedAt"))


def _ours(namespaces: list[str], shard) -> Callable[[Key], bool]:
    """The ModelDeployments this replica caches and reconciles: those in a
    namespace it watches, whatever listed them (a model another listing
    brought in would never get a watch event: its copy would go stale and be
    planned from), and with --shard, those of its shard."""
    def ours(key: Key) -> bool:
        return (not namespaces or matches(key[0], namespaces)) and (shard is None or shard.owns(key))
    return ours


# A path the API server does not serve (a kind whose CRD is not installed):
# its mux answers a bare "404 page not found", no Status; a Status with this
# message is the other form it takes. A namespace that does not exist is a
# Status saying `namespaces "x" not found`.
NOT_SERVED = "the server could not find the requested resource"


def _refusal(exc: ApiException) -> str | None:
    """'spec: ...' when the API server will not take a child built from this
    spec as it is: a 422 for the child, or a 404 for a kind it does not serve
    (e.g. a KEDA ScaledObject without KEDA installed). None: anything else,
    which the queue retries."""
    try:
        status = json.loads(exc.body or "")
        message = status.get("message") or exc.reason if isinstance(status, dict) else None
    except ValueError:
        message = None  # not a Status
    if exc.status == 422:
        return f"spec: the API server refused a child built from it: {message or exc.reason}"[:900]
    child = getattr(exc, "child", None)
    if exc.status == 404 and child is not None and (message is None or NOT_SERVED in message):
        return (f"spec: it needs a {child['kind']} ({child['apiVersion']}), which this cluster's API server does "
                f"not serve (its CustomResourceDefinition is not installed); install it, or change the spec so "
                f"it needs none. Tried again at every full resync")[:900]
    return None


def _namespace_going_away(exc: ApiException) -> bool:
    return exc.status in (403, 404) and "NamespaceTerminating" in (exc.body or "") or (
        exc.status == 404 and "namespaces" in (exc.body or ""))

