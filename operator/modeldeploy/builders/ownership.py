"""The ModelDeployment that owns the children, and the ownerReference to it."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..api.meta import API_VERSION, KIND


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> "Owner":
        return cls(name=metadata["name"], namespace=metadata["namespace"], uid=metadata["uid"])


def owner_reference(owner: Owner) -> dict[str, Any]:
    # controller: true makes the ModelDeployment the one controller of the child;
    # blockOwnerDeletion keeps it until foreground deletion has removed the child.
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def child_metadata(owner: Owner, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict:
    metadata: dict[str, Any] = {"name": name, "namespace": owner.namespace, "labels": labels}
    if annotations:
        metadata["annotations"] = annotations
    metadata["ownerReferences"] = [owner_reference(owner)]
    return metadata
