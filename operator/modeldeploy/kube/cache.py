"""An in-memory view of the watched objects, fed by the watch events kopf
delivers: the reconcile reads its inputs from here, so a steady-state
reconcile makes no request at all."""
from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field
from typing import Callable

from ..api import KIND
from ..builders.labels import NAME
from ..status.observed import PodSummary, summarize_pod
from ..reconcile.drift import applied_entries

Key = tuple[str, str]  # (namespace, ModelDeployment name)


def _slim(body: dict) -> dict:
    # managedFields are large; of them the operator reads only its own
    # manager's Apply entry (its fieldsV1), to notice a field it stopped
    # sending (reconcile/drift.py needs_apply, replicas_handover). Every other
    # manager's entry, and the entry's time and fieldsType, are dropped.
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    slim = _shared({**body, "metadata": meta})
    ours = applied_entries(body.get("metadata", {}).get("managedFields"))
    if ours:
        slim["metadata"]["managedFields"] = [_share_fields(entry) for entry in ours]
    return slim


# Distinct fieldsV1 subtrees kept for sharing; one evicted is parsed again.
FIELDS_SHAPES = 4096


def _share_fields(entry: dict) -> dict:
    """The entry with its fieldsV1 tree's subtrees shared with every other
    object's equal ones. The tree lists owned field *names*, not values, so
    the Deployments built from one kind of spec record the same one but for
    their owner reference's uid (`f:metadata.f:ownerReferences.k:{"uid":..}`):
    only that path is each object's own. It was more than half of a model's
    cached children (measured at 2,000 models: 24 of 45 KiB). Read only
    (reconcile/drift.py), never changed, so sharing is safe."""
    fields = entry.get("fieldsV1")
    shared = _shared({k: v for k, v in entry.items() if k != "fieldsV1"})
    if fields:
        shared["fieldsV1"] = _shared_tree(fields)
    return shared


def _shared_tree(tree: dict) -> dict:
    return _tree_of(json.dumps(tree, sort_keys=True, separators=(",", ":")))


@functools.lru_cache(maxsize=FIELDS_SHAPES)
def _tree_of(text: str) -> dict:
    # A tree seen before is returned whole; a new one is built from its
    # subtrees, each looked up the same way (only the path down to what makes
    # it new is built afresh).
    return {sys.intern(k): _shared_tree(v) if isinstance(v, dict) and v else _shared(v)
            for k, v in json.loads(text).items()}


# Strings up to this long are shared between cached objects (keys, label
# values, images, "True"...); longer ones are mostly unique (annotations).
SHARED_STRING_MAX = 64


def _shared(value):
    """The same value, its dict keys and short strings interned: every
    Deployment of 10,000 repeats the same few hundred keys and values, and
    each parsed watch event brings its own copy of each. Halves the memory
    of a cached object (measured: 31 -> 16 KiB for a model's children)."""
    if isinstance(value, dict):
        return {sys.intern(k): _shared(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v) for v in value]
    if isinstance(value, str) and len(value) <= SHARED_STRING_MAX:
        return sys.intern(value)
    return value


def _newer_or_equal(candidate: dict, current: dict | None) -> bool:
    """Keep the newest copy: a write's response can arrive before the watch
    event of an older version. resourceVersions are etcd revisions (integers
    in practice); when they are not, trust arrival order."""
    if current is None:
        return True
    try:
        return int(candidate["metadata"]["resourceVersion"]) >= int(current["metadata"]["resourceVersion"])
    except (KeyError, ValueError, TypeError):
        return True


def _same_version(candidate: dict, current: dict | None) -> bool:
    """The very copy the cache holds: a write's response already stored, then
    its watch event; or a re-list (kopf's first listing after the warm-up)."""
    version = candidate["metadata"].get("resourceVersion")
    return current is not None and version is not None and current["metadata"].get("resourceVersion") == version


def _everything(key: Key) -> bool:
    return True


def _name_only(body: dict) -> dict:
    """What a neighbour must still tell when its owner is another shard's:
    its kind, name and controller (plan.py _taken, a NameConflict), nothing
    of its spec or status."""
    meta = body.get("metadata", {})
    kept = {k: meta[k] for k in ("name", "namespace", "resourceVersion", "ownerReferences") if k in meta}
    return {"apiVersion": body.get("apiVersion"), "kind": body["kind"], "metadata": kept}


def owner_key(body: dict) -> Key | None:
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("controller"):
            return meta.get("namespace", ""), ref["name"]
    return None


def pod_owner(body: dict) -> Key | None:
    """The ModelDeployment a pod serves, by its label (a pod's owner is a ReplicaSet)."""
    meta = body.get("metadata", {})
    name = (meta.get("labels") or {}).get(NAME)
    return (meta.get("namespace", ""), name) if name else None


@dataclass
class Cache:
    models: dict[Key, dict] = field(default_factory=dict)
    children: dict[Key, dict[tuple[str, str], dict]] = field(default_factory=dict)
    # Every watched child by namespace, whoever controls it: to tell a name
    # another owner holds (NameConflict) from one of ours.
    by_namespace: dict[str, dict[tuple[str, str], dict]] = field(default_factory=dict)
    # Pods of each ModelDeployment, reduced to what the plan reads.
    pods: dict[Key, dict[str, PodSummary]] = field(default_factory=dict)
    # With `run --shard I/N`: the ModelDeployments this replica reconciles.
    # Another shard's models and pods are not kept, and its children only by
    # name and controller (to tell a NameConflict), so each shard holds about
    # 1/N of the objects.
    owns: Callable[[Key], bool] = _everything

    def put_model(self, body: dict) -> bool:
        """Store a ModelDeployment; False when it changes nothing the cache
        did not already hold (another shard's, an older copy, or the watch's
        echo of a copy already stored from our own write's response)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if not self.owns(key):
            return False
        before = self.models.get(key)
        if not _newer_or_equal(body, before):
            return False
        self.models[key] = _slim(body)
        return not _same_version(body, before)

    def drop_model(self, namespace: str, name: str) -> None:
        self.models.pop((namespace, name), None)

    def put_child(self, body: dict) -> Key | None:
        """Store a child; its owner's key when that is worth a pass (None for
        an object with no owner of ours, or for a copy the cache already
        holds). An older copy changes nothing but still names its owner."""
        ident = (body["kind"], body["metadata"]["name"])
        neighbours = self.by_namespace.setdefault(body["metadata"].get("namespace", ""), {})
        before = neighbours.get(ident)
        if _same_version(body, before):
            return None  # the watch's echo of our write's response, or a re-list: nothing new
        if not _newer_or_equal(body, before):
            return owner_key(body)
        key = owner_key(body)
        slim = neighbours[ident] = _slim(body) if key is None or self.owns(key) else _name_only(body)
        if before is not None and owner_key(before) not in (None, key):
            self.drop_child(before)  # its controller changed: no longer the old owner's child
            neighbours[ident] = slim
        if key is not None and self.owns(key):
            self.children.setdefault(key, {})[ident] = slim
        return key

    def drop_child(self, body: dict) -> Key | None:
        ident = (body["kind"], body["metadata"]["name"])
        neighbours = self.by_namespace.get(body["metadata"].get("namespace", ""), {})
        neighbours.pop(ident, None)
        key = owner_key(body)
        if key is not None:
            slot = self.children.get(key, {})
            slot.pop(ident, None)
            if not slot:
                self.children.pop(key, None)
        return key

    def children_of(self, key: Key) -> dict[tuple[str, str], dict]:
        return dict(self.children.get(key, {}))

    def neighbours_of(self, namespace: str) -> dict[tuple[str, str], dict]:
        return self.by_namespace.get(namespace, {})

    def put_pod(self, body: dict) -> Key | None:
        """Store a pod's summary; the owner's key when it changed (worth a pass)."""
        key = pod_owner(body)
        if key is None or not self.owns(key):
            return None
        summary = summarize_pod(body)
        slot = self.pods.setdefault(key, {})
        if slot.get(summary.name) == summary:
            return None
        slot[summary.name] = summary
        return key

    def drop_pod(self, body: dict) -> Key | None:
        key = pod_owner(body)
        if key is None:
            return None
        slot = self.pods.get(key, {})
        if slot.pop(body["metadata"].get("name", ""), None) is None:
            return None
        if not slot:
            self.pods.pop(key, None)
        return key

    def pods_of(self, key: Key) -> tuple[PodSummary, ...]:
        return tuple(self.pods.get(key, {}).values())
