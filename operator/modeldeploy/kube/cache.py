"""An in-memory view of the watched objects, fed by the watch events kopf
delivers: the reconcile reads its inputs from here, so a steady-state
reconcile makes no request at all."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..api import KIND

Key = tuple[str, str]  # (namespace, ModelDeployment name)


def _slim(body: dict) -> dict:
    # managedFields are large and never read by the operator.
    meta = {k: v for k, v in body.get("metadata", {}).items() if k != "managedFields"}
    return {**body, "metadata": meta}


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


def owner_key(body: dict) -> Key | None:
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == KIND and ref.get("controller"):
            return meta.get("namespace", ""), ref["name"]
    return None


@dataclass
class Cache:
    models: dict[Key, dict] = field(default_factory=dict)
    children: dict[Key, dict[tuple[str, str], dict]] = field(default_factory=dict)

    def put_model(self, body: dict) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if _newer_or_equal(body, self.models.get(key)):
            self.models[key] = _slim(body)

    def drop_model(self, namespace: str, name: str) -> None:
        self.models.pop((namespace, name), None)

    def put_child(self, body: dict) -> Key | None:
        key = owner_key(body)
        if key is None:
            return None
        slot = self.children.setdefault(key, {})
        ident = (body["kind"], body["metadata"]["name"])
        if _newer_or_equal(body, slot.get(ident)):
            slot[ident] = _slim(body)
        return key

    def drop_child(self, body: dict) -> Key | None:
        key = owner_key(body)
        if key is not None:
            slot = self.children.get(key, {})
            slot.pop((body["kind"], body["metadata"]["name"]), None)
            if not slot:
                self.children.pop(key, None)
        return key

    def children_of(self, key: Key) -> dict[tuple[str, str], dict]:
        return dict(self.children.get(key, {}))
