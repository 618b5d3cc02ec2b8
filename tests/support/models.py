"""ModelDeployment documents and status reads for the tests."""
from __future__ import annotations

import copy

import yaml

from support.cluster import Cluster
from support.waiting import wait_until

API = ("modeldeploy.io", "v1alpha1")


def model_deployment(name: str, *, version: str = "v1", replicas: int | None = 2, behavior: str | None = None,
                     **spec_extra) -> dict:
    spec: dict = {
        "model": {"uri": f"s3://models/{name}/{version}", "version": version, "format": "sklearn"},
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}},
        **({"replicas": replicas} if replicas is not None else {}),
        **spec_extra,
    }
    if behavior:
        spec.setdefault("podMetadata", {}).setdefault("labels", {})["sim.modeldeploy.io/behavior"] = behavior
    return {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name}, "spec": spec}


def get_md(cluster: Cluster, namespace: str, name: str) -> dict:
    return cluster.custom.get_namespaced_custom_object(*API, namespace, "modeldeployments", name)


def condition(md: dict, type_: str) -> dict | None:
    return next((c for c in md.get("status", {}).get("conditions", []) if c["type"] == type_), None)


def is_true(md: dict, type_: str) -> bool:
    c = condition(md, type_)
    return bool(c and c["status"] == "True")


def status_view(md: dict) -> dict:
    st = md.get("status", {})
    return {"phase": st.get("phase"), "observedGeneration": st.get("observedGeneration"),
            "generation": md["metadata"].get("generation"), "stable": st.get("stable"),
            "conditions": [(c["type"], c["status"], c.get("reason"), c.get("message", "")[:160])
                           for c in st.get("conditions", [])]}


def wait_ready(cluster: Cluster, namespace: str, name: str, timeout: float = 60) -> dict:
    def ready():
        md = get_md(cluster, namespace, name)
        st = md.get("status", {})
        return (is_true(md, "Ready") and st.get("observedGeneration") == md["metadata"]["generation"]) and md
    return wait_until(ready, timeout=timeout, what=f"{namespace}/{name} Ready",
                      describe=lambda: status_view(get_md(cluster, namespace, name)))


def apply_md(cluster: Cluster, namespace: str, doc: dict) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def edited(doc: dict, **spec_changes) -> dict:
    new = copy.deepcopy(doc)
    new["spec"].update(spec_changes)
    return new
