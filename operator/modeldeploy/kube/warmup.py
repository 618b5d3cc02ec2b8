"""Fill the watch cache before the first pass (client-go's WaitForCacheSync).

kopf starts one watch per kind and delivers each stream's initial listing as
it arrives, in no particular order: a restarted operator could see a
ModelDeployment mid-rollout before its route, its canary Deployment or its
pods, and plan from a world without them (a canary at 60% seen with no ready
canary pod is sent back to 0% until the pods arrive, a needless flap). So
start() lists every watched kind once, before any pass runs; the watches then
only bring what changed since (the cache keeps the newest copy of each).

A kind that cannot be listed (its CRD not installed, or not granted) is left
to its watch, as before.
"""
from __future__ import annotations

import fnmatch
import logging
from typing import Iterable

from kubernetes.client.exceptions import ApiException

from ..builders.labels import MANAGED_BY
from .cache import Cache
from .resources import CHILD_KINDS, MODEL_DEPLOYMENT, POD, Resource
from .writing import Kube

log = logging.getLogger(__name__)

# The same selector the child and pod watches use (handlers.py).
MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
NAMESPACE = Resource("v1", "Namespace", "namespaces")


def matches(namespace: str, patterns: Iterable[str]) -> bool:
    """kopf's rule for `--namespace` patterns (kopf/_cogs/structs/references.py
    match_namespace): a namespace is watched when any pattern matches it. A
    pattern is comma-separated globs read left to right: the first decides,
    "!glob" excludes, a later glob takes back what an exclusion removed; a
    pattern that begins with an exclusion begins with "*"."""
    return any(_matches_one(namespace, pattern) for pattern in patterns)


def _matches_one(namespace: str, pattern: str) -> bool:
    globs = [glob.strip() for glob in pattern.split(",")]
    if globs[0].startswith("!"):
        globs.insert(0, "*")
    matched = first = fnmatch.fnmatchcase(namespace, globs[0])
    for glob in globs[1:]:
        if glob.startswith("!"):
            matched = matched and not fnmatch.fnmatchcase(namespace, glob[1:])
        else:
            matched = matched or (first and fnmatch.fnmatchcase(namespace, glob))
    return matched


def _literal(pattern: str) -> bool:
    return not any(c in pattern for c in "*?[!,")


async def scopes(kube: Kube, patterns: list[str]) -> list[str | None]:
    """Where to list: everywhere (None) when no namespace is named, else each
    namespace the patterns name or match."""
    if not patterns:
        return [None]
    if all(_literal(p) for p in patterns):
        return list(dict.fromkeys(p.strip() for p in patterns))
    existing = [ns["metadata"]["name"] for ns in await kube.list_all(NAMESPACE, None)]
    return [ns for ns in existing if matches(ns, patterns)]


async def warm(kube: Kube, cache: Cache, patterns: list[str]) -> dict[str, int]:
    """List every watched kind into the cache; how many of each were found."""
    found: dict[str, int] = {}
    kinds = [(MODEL_DEPLOYMENT, None), *((res, MANAGED_SELECTOR) for res in CHILD_KINDS.values()),
             (POD, MANAGED_SELECTOR)]
    for namespace in await scopes(kube, patterns):
        for res, selector in kinds:
            put = cache.put_model if res is MODEL_DEPLOYMENT else cache.put_pod if res is POD else cache.put_child
            try:
                # Page by page into the cache, which keeps what it owns (a
                # shard: about 1/N): the whole list is never held at once.
                async for page in kube.list_pages(res, namespace, selector):
                    for item in page:
                        put(item)
                    found[res.kind] = found.get(res.kind, 0) + len(page)
            except ApiException as exc:
                if exc.status not in (403, 404):
                    raise
                log.info("not listing %s before the first pass (%s): its watch fills the cache", res.plural,
                         exc.status)
                continue
    return found
