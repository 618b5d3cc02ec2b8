"""The install manifests (manifests/) as the tests use them: built with the
kustomize inside kubectl, composed as a user's own kustomization would, and
moved into throwaway names so tests and parallel sessions never collide."""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import yaml

from support.cluster import REPO, Cluster

MANIFESTS = REPO / "manifests"
SYSTEM_NAMESPACE = "modeldeploy-system"
ACCOUNT = "modeldeploy-operator"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def build(cluster: Cluster, directory: Path) -> list[dict]:
    """`kubectl kustomize DIR`, parsed."""
    out = cluster.kubectl("kustomize", str(directory)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def compose(cluster: Cluster, workdir: Path, *, resources: list[str], components: list[str] = ()) -> list[dict]:
    """A user's own kustomization over pieces of manifests/ (paths relative to
    it), e.g. the namespaced overlay plus the Gateway API component.
    kustomize accepts only relative paths to other roots, hence relpath."""
    workdir.mkdir(parents=True, exist_ok=True)
    rel = lambda p: os.path.relpath(MANIFESTS / p, workdir)  # noqa: E731
    (workdir / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [rel(r) for r in resources], "components": [rel(c) for c in components]}))
    return build(cluster, workdir)


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    hits = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(hits) == 1, f"expected one {kind} {name or ''}, found {len(hits)}"
    return hits[0]


def relocate(docs: list[dict], *, system_namespace: str, suffix: str,
             watched: dict[str, str] | None = None) -> list[dict]:
    """The same objects under other names: the operator's namespace becomes
    `system_namespace`, cluster-scoped RBAC names get `suffix`, and
    namespaced RoleBindings move per `watched` (old namespace -> new).
    Everything else -- rules, verbs, subjects' accounts -- stays as shipped."""
    watched = watched or {}
    out = []
    for doc in copy.deepcopy(docs):
        meta = doc["metadata"]
        kind = doc["kind"]
        if kind == "Namespace" and meta["name"] == SYSTEM_NAMESPACE:
            meta["name"] = system_namespace
        elif kind in ("ClusterRole", "ClusterRoleBinding"):
            meta["name"] += suffix
        elif meta.get("namespace") == SYSTEM_NAMESPACE:
            meta["namespace"] = system_namespace
        elif meta.get("namespace") in watched:
            meta["namespace"] = watched[meta["namespace"]]
        if kind in ("ClusterRoleBinding", "RoleBinding"):
            if doc["roleRef"]["kind"] == "ClusterRole":
                doc["roleRef"]["name"] += suffix
            for subject in doc.get("subjects", []):
                if subject.get("namespace") == SYSTEM_NAMESPACE:
                    subject["namespace"] = system_namespace
        if kind == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                c["args"] = [_rewatch(a, watched) for a in c.get("args", [])]
        out.append(doc)
    return out


def _rewatch(arg: str, watched: dict[str, str]) -> str:
    flag, _, value = arg.partition("=")
    return f"{flag}={watched[value]}" if flag == "--namespace" and value in watched else arg


def apply_docs(cluster: Cluster, docs: list[dict]) -> None:
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def delete_docs(cluster: Cluster, docs: list[dict]) -> None:
    cluster.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", "-", input=yaml.safe_dump_all(docs),
                    check=False)


def audit_entries(cluster: Cluster, mark: int, username: str) -> list[dict]:
    """Requests by this user the API server audited since `mark` (a byte
    offset into the audit log). The policy audits writes only."""
    with (cluster.dir / "logs" / "audit.log").open("rb") as f:
        f.seek(mark)
        entries = [json.loads(line) for line in f.read().splitlines() if line.strip()]
    return [e for e in entries if e.get("user", {}).get("username") == username]
