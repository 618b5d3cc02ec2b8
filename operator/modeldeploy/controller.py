"""The reconcile: a short list of steps with early returns.

    read    the ModelDeployment and its children from the watch cache
    parse   the spec (pydantic); an invalid one stalls with InvalidSpec and
            touches nothing that serves
    build   the desired children (pure builders)
    apply   only those that differ from what is live; prune the ones no
            longer wanted
    observe pods, only while something is not yet ready
    report  derive the status in memory and write it once, only if it changed

Everything the reconcile decides comes from the pure layers; this module only
moves data between them and the API server.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone

from kubernetes.client.exceptions import ApiException

from . import conditions as c
from . import metrics
from .api import InvalidSpec, parse_spec
from .builders.children import shared_children
from .builders.deployment import build_deployment
from .builders.labels import NAME
from .builders.naming import Role
from .builders.ownership import Owner
from .builders.revision import compute_revision
from .kube.cache import Cache, Key
from .kube.clients import make_api_client
from .kube.drift import holds
from .kube.peering import PeeringGate
from .kube.queue import ReconcileQueue
from .kube.prometheus import run_plan
from .kube.resources import CHILD_KINDS, MODEL_DEPLOYMENT
from .kube.writing import Kube
from .rollout import Inputs, decide, plan_analysis, read_state
from .runtimes import load_runtime_table
from .settings import OperatorSettings
from .status.derive import derive_status
from .status.transitions import format_time
from .status.observed import Observed, observe_deployment, summarize_pod
from .traffic import provider_for

log = logging.getLogger(__name__)

# Kinds pruned when no longer desired: the HPA after autoscaling is turned
# off, the canary Deployment after a rollout ends, a route after the traffic
# provider changes.
PRUNABLE = {"HorizontalPodAutoscaler", "PodDisruptionBudget", "Deployment", "Service", "HTTPRoute",
            "VirtualService"}


# A namespace being deleted takes a while to empty; a namespace of the same
# name created again later is served again after this long.
TERMINATING_NAMESPACE_QUIET_SECONDS = 30.0
# The longest wait between two looks at a converging ModelDeployment.
POLL_MAX_SECONDS = 30.0


def _stalled_reason(status: dict | None) -> tuple[str, str] | None:
    for cond in (status or {}).get("conditions", []):
        if cond.get("type") == c.STALLED and cond.get("status") == c.TRUE:
            return cond.get("reason", ""), cond.get("message", "")
    return None


class Controller:
    def __init__(self, settings: OperatorSettings, kube: Kube | None = None,
                 peering: PeeringGate | None = None) -> None:
        self.settings = settings
        # With kopf peering: asked before every pass, so a paused replica's
        # own timers and resync do not act on its frozen cache.
        self.peering = peering
        self.table = load_runtime_table(settings.runtime_table)
        self.kube = kube or Kube(make_api_client(settings.kubeconfig, pool_size=settings.api_workers),
                                 workers=settings.api_workers)
        self.cache = Cache()
        self.queue = ReconcileQueue(self.reconcile, concurrency=settings.concurrency)
        self.started = False
        self.resyncs = 0
        self._tasks: list[asyncio.Task] = []
        # Converging ModelDeployments: how many progress polls so far.
        self._polls: dict[Key, int] = {}
        # Namespaces found terminating, until when to leave them alone.
        self._terminating: dict[str, float] = {}

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._resync_forever()), loop.create_task(metrics.watch_loop_lag())]
        self.started = True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.queue.close()
        self.kube.close()

    async def _resync_forever(self) -> None:
        # A full pass now and then catches anything a watch could have missed.
        # In a steady state it writes nothing, so it is cheap to keep.
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for key in list(self.cache.models):
                self.queue.add(key)
            while not self.queue.idle:
                await asyncio.sleep(0.05)
            self.resyncs += 1

    # -- watch events ------------------------------------------------------
    def on_model_event(self, kind: str | None, body: dict) -> None:
        meta = body["metadata"]
        if kind == "DELETED":
            self.cache.drop_model(meta["namespace"], meta["name"])
            metrics.forget_model(meta["namespace"], meta["name"])
            return
        self.cache.put_model(body)
        self.queue.add((meta["namespace"], meta["name"]))

    def on_child_event(self, kind: str | None, body: dict) -> None:
        key = self.cache.drop_child(body) if kind == "DELETED" else self.cache.put_child(body)
        if key is not None and key in self.cache.models:
            self.queue.add(key)

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
        md = self.cache.models.get(key)
        if md is None or md["metadata"].get("deletionTimestamp"):
            return None  # owner references let the garbage collector remove the children
        if self.peering is not None and not await self.peering.active(key[0], self.kube):
            # Another replica acts. When kopf resumes this one, its re-list
            # enqueues every ModelDeployment again, from fresh copies.
            return None
        namespace, name = key
        now = datetime.now(timezone.utc)
        generation = md["metadata"].get("generation", 0)
        children = self.cache.children_of(key)

        try:
            spec = parse_spec(md.get("spec"), known_formats=self.table.known_formats, name=name)
        except InvalidSpec as invalid:
            # Serving stays exactly as it is: no child is written or pruned.
            await self._report_invalid(md, children, invalid, now)
            return None

        # 1. What is there, gathered once.
        revision = compute_revision(spec, self.table)
        owner = Owner.from_metadata(md["metadata"])
        provider = provider_for(spec)
        observed = await self._observe(key, children, revision)
        inputs = Inputs(name=name, namespace=namespace, spec=spec, revision=revision,
                        state=read_state(md.get("status")), observed=observed,
                        weights=provider.read_weights(owner, children, observed), now=now,
                        annotations=md["metadata"].get("annotations") or {})
        plan = plan_analysis(inputs)
        if plan is not None:
            inputs = replace(inputs, analysis=await run_plan(plan, self.kube.pool))

        # 2. What should be there (pure).
        decision = decide(inputs)
        desired = [build_deployment(owner, decision.stable_spec, self.table, role=Role.STABLE,
                                    replicas=decision.stable_replicas)]
        if decision.canary_replicas is not None:
            desired.append(build_deployment(owner, spec, self.table, role=Role.CANARY,
                                            replicas=decision.canary_replicas))
        desired += shared_children(owner, spec)
        desired += provider.build_routes(owner, spec, decision.weights)

        # 3. Make it so: apply what differs; then prune, so the route has moved
        # traffic off the canary before its Deployment goes.
        try:
            await self._apply_changed(key, desired, children)
        except ApiException as exc:
            if exc.status != 422:
                raise
            # The API server refuses a child built from this spec (e.g. an
            # environment variable or label name it does not accept). No retry
            # can fix that: stall with its message, as for any invalid spec.
            await self._report_invalid(md, children, InvalidSpec([_refusal(exc)]), now)
            return None
        await self._prune(key, desired, self.cache.children_of(key))
        if decision.remove_annotations:
            await self._consume_annotations(md, decision.remove_annotations)
        for event in decision.events:
            await self.kube.event(md, type=event.type, reason=event.reason, message=event.message)

        # 4. Tell the truth, once.
        children = self.cache.children_of(key)
        observed = replace(observed, stable=observe_deployment(children.get(("Deployment", f"{name}-stable"))),
                           canary=observe_deployment(children.get(("Deployment", f"{name}-canary"))))
        status = derive_status(name=name, namespace=namespace, generation=generation, spec=spec,
                               revision=revision, observed=observed, previous=md.get("status"), now=now,
                               rollout=decision.report)
        await self._report(md, status, announced={e.reason for e in decision.events})
        _count_outcomes(decision, analysed=inputs.analysis is not None, now=now)
        # Pod-level trouble (crash loops, pull errors) does not change the
        # Deployment until its deadline: look again while converging, less
        # and less often (a thousand converging models must not become a
        # flood of pod lists), and not at all once settled.
        settled = _settled(observed.stable, revision) and observed.canary is None
        waits = [t for t in (decision.requeue_after, None if settled else self._next_poll(key)) if t is not None]
        if settled:
            self._polls.pop(key, None)
        return min(waits) if waits else None

    def _next_poll(self, key: Key) -> float:
        attempt = self._polls.get(key, 0)
        self._polls[key] = attempt + 1
        return min(self.settings.progressing_poll_seconds * 2 ** attempt, POLL_MAX_SECONDS)

    async def _report_invalid(self, md: dict, children: dict, invalid: InvalidSpec, now: datetime) -> None:
        meta = md["metadata"]
        name = meta["name"]
        observed = Observed(stable=observe_deployment(children.get(("Deployment", f"{name}-stable"))))
        status = derive_status(name=name, namespace=meta["namespace"], generation=meta.get("generation", 0),
                               spec=invalid, revision=None, observed=observed, previous=md.get("status"), now=now)
        await self._report(md, status)

    async def _observe(self, key: Key, children: dict, revision: str) -> Observed:
        name = key[1]
        stable = observe_deployment(children.get(("Deployment", f"{name}-stable")))
        canary = observe_deployment(children.get(("Deployment", f"{name}-canary")))
        pods = ()
        # Pods only when they can tell something the Deployment does not: the
        # canary's health checks always need them; for the stable revision,
        # only once its Deployment has stopped making progress for a while
        # (a crash loop or a failing pull shows no progress), not while pods
        # are simply starting.
        if canary is not None or (not _settled(stable, revision) and self._stuck_for_a_while(children, name)):
            pods = tuple(summarize_pod(p) for p in await self.kube.list_pods(key[0], f"{NAME}={name}"))
        return Observed(stable=stable, canary=canary, pods=pods)

    def _stuck_for_a_while(self, children: dict, name: str) -> bool:
        body = children.get(("Deployment", f"{name}-stable"))
        if body is None:
            return False
        progressing = next((cond for cond in (body.get("status") or {}).get("conditions") or ()
                            if cond.get("type") == "Progressing"), None)
        since = (progressing or {}).get("lastUpdateTime") or body["metadata"].get("creationTimestamp")
        if not since:
            return True
        last = datetime.fromisoformat(str(since).replace("Z", "+00:00"))
        return (datetime.now(timezone.utc) - last).total_seconds() >= self.settings.pod_look_grace_seconds

    async def _consume_annotations(self, md: dict, names: tuple[str, ...]) -> None:
        meta = md["metadata"]
        updated = await self.kube.patch_metadata(MODEL_DEPLOYMENT, meta["namespace"], meta["name"],
                                                 {"annotations": {n: None for n in names}})
        self.cache.put_model(updated)

    async def _apply_changed(self, key: Key, desired: list[dict], live: dict) -> None:
        for manifest in desired:
            current = live.get((manifest["kind"], manifest["metadata"]["name"]))
            if self.settings.skip_unchanged_writes and current is not None and holds(manifest, current):
                continue
            applied = await self.kube.apply(manifest)
            self.cache.put_child(applied)

    async def _prune(self, key: Key, desired: list[dict], live: dict) -> None:
        wanted = {(m["kind"], m["metadata"]["name"]) for m in desired}
        for (kind, child_name), body in live.items():
            if kind in PRUNABLE and (kind, child_name) not in wanted:
                await self.kube.delete(CHILD_KINDS[kind], key[0], child_name)
                self.cache.drop_child(body)

    async def _report(self, md: dict, status: dict, announced: set[str] = frozenset()) -> None:
        """Write the status once, only when it differs; an Event only when the
        ModelDeployment newly stalls (not on every pass that finds it stalled,
        nor when the rollout already announced it, e.g. RolledBack)."""
        previous = md.get("status") or {}
        if self.settings.skip_unchanged_writes and status == previous:
            return
        meta = md["metadata"]
        try:
            written = await self.kube.apply_status(meta["namespace"], meta["name"], status)
        except ApiException as exc:
            if exc.status == 404:
                return  # deleted meanwhile
            raise
        self.cache.put_model(written)
        metrics.track_model(meta["namespace"], meta["name"], status)
        stalled, was = _stalled_reason(status), _stalled_reason(previous)
        if stalled and stalled != was and stalled[0] not in announced:
            await self.kube.event(md, type="Warning", reason=stalled[0], message=stalled[1])


def _count_outcomes(decision, *, analysed: bool, now: datetime) -> None:
    for entry in decision.report.history:
        metrics.ROLLOUTS.labels(entry.result).inc()
    if analysed:
        stamp = format_time(now)
        for record in decision.report.progress.decisions:
            if record.time == stamp:
                metrics.VERDICTS.labels(record.verdict).inc()


def _refusal(exc: ApiException) -> str:
    """'spec: ...' from the API server's 422 Status for a child."""
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except ValueError:
        message = exc.reason
    return f"spec: the API server refused a child built from it: {message}"[:900]


def _namespace_going_away(exc: ApiException) -> bool:
    return exc.status in (403, 404) and "NamespaceTerminating" in (exc.body or "") or (
        exc.status == 404 and "namespaces" in (exc.body or ""))


def _settled(stable, revision: str) -> bool:
    """The stable Deployment runs `revision` with every replica ready and nothing left over."""
    return (stable is not None and stable.revision == revision
            and stable.observed_generation >= stable.generation
            and stable.ready_replicas == stable.replicas == stable.updated_replicas == stable.status_replicas)
