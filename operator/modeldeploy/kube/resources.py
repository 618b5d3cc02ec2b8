"""Where each kind the operator writes lives on the API server."""
from __future__ import annotations

from dataclasses import dataclass

from ..api import GROUP, PLURAL, VERSION
from ..reconcile.kinds import CHILD_RESOURCES


@dataclass(frozen=True)
class Resource:
    api_version: str
    kind: str
    plural: str

    def path(self, namespace: str, name: str | None = None, subresource: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        path = f"{base}/namespaces/{namespace}/{self.plural}"
        if name:
            path += f"/{name}"
        if subresource:
            path += f"/{subresource}"
        return path

    def collection(self, namespace: str | None) -> str:
        """Every object of the kind in one namespace, or in all (None)."""
        if namespace is not None:
            return self.path(namespace)
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{base}/{self.plural}"


MODEL_DEPLOYMENT = Resource(f"{GROUP}/{VERSION}", "ModelDeployment", PLURAL)
POD = Resource("v1", "Pod", "pods")
EVENT = Resource("v1", "Event", "events")

# Children the operator owns, by kind, from the one registry (reconcile.kinds).
# The API version is the one we write: a child read back under another
# version is still the same kind.
CHILD_KINDS: dict[str, Resource] = {k.kind: Resource(*k) for k in CHILD_RESOURCES}
DEPLOYMENT, SERVICE, HPA, PDB = (CHILD_KINDS[k] for k in ("Deployment", "Service", "HorizontalPodAutoscaler",
                                                          "PodDisruptionBudget"))
HTTPROUTE, VIRTUALSERVICE = CHILD_KINDS["HTTPRoute"], CHILD_KINDS["VirtualService"]


def resource_of(manifest: dict) -> Resource:
    kind = manifest["kind"]
    if kind == MODEL_DEPLOYMENT.kind:
        return MODEL_DEPLOYMENT
    try:
        return CHILD_KINDS[kind]
    except KeyError:
        raise ValueError(f"the operator does not manage {kind} objects") from None
