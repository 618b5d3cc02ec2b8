"""Pieces of the chaos tests: the control plane's processes restarted under
the operator and inventories of what the operator created. (Operator
processes with their own metrics port are support.process.MeteredOperator.)

Everything here reads what a user could see (objects, status); nothing
reaches into the operator's memory."""
from __future__ import annotations

import os
import subprocess
import time

from support.cluster import CLUSTER_SCRIPT, Cluster
from support.models import API, condition
from modeldeploy.reconcile.kinds import CHILD_RESOURCES

PLURAL = "modeldeployments"
# Kinds the operator creates, as `kubectl get` names them: from the one registry.
CHILD_KINDS = tuple(f"{k.plural}.{k.group}" if k.group else k.plural for k in CHILD_RESOURCES)


# -- the control plane --------------------------------------------------------

def restart_components(cluster: Cluster, *components: str, timeout: float = 150) -> float:
    """`hack/cluster.sh restart COMPONENT...`; returns how long it took."""
    started = time.monotonic()
    proc = subprocess.run([str(CLUSTER_SCRIPT), "restart", *components],
                          env=dict(os.environ, CLUSTER_DIR=str(cluster.dir)),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"hack/cluster.sh restart {' '.join(components)} failed:\n{proc.stderr[-3000:]}"
    return time.monotonic() - started


def component_pid(cluster: Cluster, component: str) -> int:
    return int((cluster.dir / "pids" / f"{component}.pid").read_text())


# -- what the operator made ----------------------------------------------------

def list_mds(cluster: Cluster, namespace: str) -> dict[str, dict]:
    items = cluster.custom.list_namespaced_custom_object(*API, namespace, PLURAL)["items"]
    return {md["metadata"]["name"]: md for md in items}


def children(cluster: Cluster, namespace: str) -> set[tuple[str, str]]:
    """(kind, name) of every object of a child kind in the namespace,
    whoever made it (an orphan is exactly what nobody should have left)."""
    out = cluster.kubectl("get", "-n", namespace, ",".join(CHILD_KINDS), "-o",
                          "jsonpath={range .items[*]}{.kind}/{.metadata.name}{\"\\n\"}{end}").stdout
    return {tuple(line.split("/", 1)) for line in out.splitlines() if line.strip()}  # type: ignore[misc]


def expected_children(name: str, *, route: str | None = "HTTPRoute", pdb: bool = False,
                      canary: bool = False) -> set[tuple[str, str]]:
    """What a settled ModelDeployment `name` leaves in its namespace."""
    want = {("Deployment", f"{name}-stable"), ("Service", name), ("Service", f"{name}-stable"),
            ("Service", f"{name}-canary")}
    if route:
        want.add((route, name))
    if pdb:
        want.add(("PodDisruptionBudget", name))
    if canary:
        want.add(("Deployment", f"{name}-canary"))
    return want


def history(md: dict) -> list[tuple[str, str]]:
    return [(h["modelVersion"], h["result"]) for h in md.get("status", {}).get("history", [])]


def reason(md: dict, type_: str) -> str | None:
    c = condition(md, type_)
    return c["reason"] if c and c["status"] == "True" else None


def brief(md: dict) -> str:
    st = md.get("status", {})
    return (f"{md['metadata']['name']}: {st.get('phase')} stable={(st.get('stable') or {}).get('modelVersion')} "
            f"step={(st.get('rollout') or {}).get('step')} history={history(md)}")
