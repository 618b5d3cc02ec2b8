"""Every write the operator makes goes through here: server-side apply of
children and of the status, deletes and Events. Each call is counted (by verb
and kind) so the metrics and the idempotence tests can see them."""
from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .. import metrics
from ..api.times import format_time, utcnow
from ..reconcile.drift import FIELD_MANAGER
from .resources import EVENT, MODEL_DEPLOYMENT, Resource, resource_of

log = logging.getLogger(__name__)

# Objects per page of a list (the warm-up, kopf's own listings): a page is
# parsed and dropped before the next, so memory never holds a whole list.
LIST_PAGE_SIZE = 500


# Characters a YAML 1.1 reader does not take raw inside a string as they are
# (besides the C0 controls, which JSON escapes anyway): DEL, the C1 controls,
# U+FFFE/U+FFFF (not allowed), and NEL, LS and PS (line breaks, folded into
# a space).
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ufffe\uffff]")


def apply_patch_body(body: dict) -> bytes:
    """A server-side apply body as JSON the API server's YAML reader accepts.

    The client would send json.dumps(body), which escapes characters outside
    the BMP (an emoji in a model version) as surrogate pairs "\\ud83d\\ude80":
    valid JSON, but the API server reads an apply patch as YAML, which refuses
    them (400 "invalid Unicode character escape code"). Raw UTF-8 is valid in
    both, except for the characters YAML calls non-printable (a C1 control in
    a model version: 400 "control characters are not allowed", found by the
    fuzz test) or reads as line breaks, which go as \\u escapes, valid in
    both."""
    text = json.dumps(body, ensure_ascii=False)
    return _NOT_YAML_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")


class Kube:
    """The operator's handle on the API server. Calls run on a bounded thread
    pool (the official client is synchronous) so the event loop never blocks."""

    def __init__(self, api: client.ApiClient, workers: int = 8) -> None:
        self.api = api
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kube")
        self.writes: Counter[tuple[str, str]] = Counter()
        self.reads: Counter[tuple[str, str]] = Counter()

    def _wrote(self, verb: str, kind: str) -> None:
        self.writes[(verb, kind)] += 1
        metrics.API_WRITES.labels(verb, kind).inc()

    async def _call(self, method: str, path: str, *, body: object = None, query: list | None = None,
                    content_type: str = "application/json") -> dict:
        if content_type == "application/apply-patch+yaml" and isinstance(body, dict):
            body = apply_patch_body(body)

        def call() -> dict:
            request = self.api.param_serialize(
                method, path, query_params=query or [], body=body, auth_settings=["BearerToken"],
                header_params={"Content-Type": content_type, "Accept": "application/json"})
            response = self.api.call_api(*request)
            response.read()
            if not 200 <= response.status <= 299:
                raise ApiException(http_resp=response)
            return json.loads(response.data) if response.data else {}
        return await asyncio.get_running_loop().run_in_executor(self.pool, call)

    async def apply(self, manifest: dict, *, field_manager: str = FIELD_MANAGER, force: bool = True) -> dict:
        """Server-side apply under our one field manager. ``force`` takes over
        fields a person changed by hand (drift is undone), but never fields we
        do not send: e.g. ``replicas`` under an HPA stays the HPA's.
        ``field_manager`` is another manager only for a handover
        (reconcile/drift.py ``replicas_handover``: HANDOVER_MANAGER), which is
        sent without ``force``: a conflict there means the HPA already owns the
        count, and must not be set back."""
        res = resource_of(manifest)
        meta = manifest["metadata"]
        self._wrote("apply", res.kind)
        return await self._call(
            "PATCH", res.path(meta["namespace"], meta["name"]), body=manifest,
            query=[("fieldManager", field_manager), ("force", "true" if force else "false")],
            content_type="application/apply-patch+yaml")

    async def apply_status(self, namespace: str, name: str, status: dict, *,
                           resource_version: str | None = None) -> dict:
        """The status a pass planned. ``resource_version``: the copy it planned
        from; the API server then refuses the write (409) if the object has
        changed since, so a status planned from an older copy never replaces
        a newer one (the status is the rollout's memory)."""
        meta = {"name": name, "namespace": namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        body = {"apiVersion": MODEL_DEPLOYMENT.api_version, "kind": MODEL_DEPLOYMENT.kind,
                "metadata": meta, "status": status}
        self._wrote("apply", "ModelDeployment/status")
        return await self._call(
            "PATCH", MODEL_DEPLOYMENT.path(namespace, name, "status"), body=body,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml")

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        """A ModelDeployment's scale subresource (spec.autoscaling.replicas):
        a merge patch, as `kubectl scale` makes."""
        self._wrote("patch", "ModelDeployment/scale")
        await self._call("PATCH", MODEL_DEPLOYMENT.path(namespace, name, "scale"),
                         body={"spec": {"replicas": replicas}}, content_type="application/merge-patch+json")

    async def patch_metadata(self, res: Resource, namespace: str, name: str, patch: dict) -> dict:
        """A JSON merge patch of metadata (e.g. consuming an annotation)."""
        self._wrote("patch", res.kind)
        return await self._call("PATCH", res.path(namespace, name), body={"metadata": patch},
                                content_type="application/merge-patch+json")

    async def delete(self, res: Resource, namespace: str, name: str) -> None:
        self._wrote("delete", res.kind)
        try:
            await self._call("DELETE", res.path(namespace, name),
                             body={"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status != 404:  # already gone is what we wanted
                raise

    async def get(self, path: str, *, kind: str) -> dict:
        """One object by its API path (a read: counted, never audited)."""
        self.reads[("get", kind)] += 1
        metrics.API_READS.labels("get", kind).inc()
        return await self._call("GET", path)

    async def list_all(self, res: Resource, namespace: str | None, selector: str | None = None) -> list[dict]:
        """Every object of a kind (in one namespace, or all: None), a page of
        500 at a time. List items carry no kind: it is set on each, as a watch
        event would have it."""
        return [item async for page in self.list_pages(res, namespace, selector) for item in page]

    async def list_pages(self, res: Resource, namespace: str | None, selector: str | None = None,
                         limit: int = LIST_PAGE_SIZE):
        """The same, one page at a time: a caller that keeps only part of
        each page (a shard) never holds the whole list."""
        query = [("limit", str(limit))] + ([("labelSelector", selector)] if selector else [])
        token = None
        while True:
            self.reads[("list", res.kind)] += 1
            metrics.API_READS.labels("list", res.kind).inc()
            data = await self._call("GET", res.collection(namespace),
                                    query=query + ([("continue", token)] if token else []))
            yield [{"apiVersion": res.api_version, "kind": res.kind, **item} for item in data.get("items", [])]
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return

    async def event(self, involved: dict, *, type: str, reason: str, message: str) -> None:
        """A core/v1 Event on the ModelDeployment, as `kubectl describe` shows them."""
        meta = involved["metadata"]
        now = format_time(utcnow())
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                               "name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "type": type, "reason": reason, "message": message[:1024],
            "source": {"component": FIELD_MANAGER}, "reportingComponent": FIELD_MANAGER,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        self._wrote("create", "Event")
        try:
            await self._call("POST", EVENT.path(meta["namespace"]), body=body)
        except ApiException as exc:  # an Event is a courtesy: never fail a reconcile on it
            log.warning("could not post event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], exc.reason)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
