"""Pieces of the chaos tests: the control plane's processes restarted under
the operator, operator processes with their own metrics port, inventories of
what the operator created, and per-namespace write counts from the API
server's audit log.

Everything here reads what a user could see (objects, status, the audit log,
the operator's /metrics); nothing reaches into the operator's memory."""
from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from support.cluster import CLUSTER_SCRIPT, Cluster
from support.models import API, condition
from modeldeploy.reconcile.kinds import CHILD_RESOURCES
from support.operator import AuditLog, free_port
from support.process import OperatorProcess

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


# -- operator processes -------------------------------------------------------

class MeteredOperator(OperatorProcess):
    """`modeldeploy run` as a process of its own, serving /metrics on a
    private port so the test can tell which process wrote what."""

    def __init__(self, cluster: Cluster, namespace: str, log: Path, extra_args: tuple[str, ...] = (),
                 env: dict[str, str] | None = None) -> None:
        self.metrics_port = free_port()
        super().__init__(cluster, namespace, log, extra_args=("--metrics-port", str(self.metrics_port), *extra_args),
                         env=env)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
            return resp.read().decode()

    def writes(self) -> int:
        """Every write request this process made (apply, patch, delete, Event)."""
        return int(sum(float(v) for v in re.findall(r"^modeldeploy_api_writes_total\{[^}]*\} (\S+)$",
                                                    self.metrics(), re.M)))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


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


# -- writes as the API server saw them ----------------------------------------

@dataclass
class NamespaceWrites:
    """Write requests in one namespace since a mark, split by who made them
    (the audit log's user agent)."""
    audit: AuditLog
    namespace: str
    mark: int = field(init=False)

    def __post_init__(self) -> None:
        self.mark = self.audit.mark()

    def since_mark(self, agents: tuple[str, ...] | None = None) -> list[dict]:
        entries = self.audit.writes_since(self.mark, agents) if agents else self.audit.writes_since(self.mark, ("",))
        return [e for e in entries if f"/namespaces/{self.namespace}/" in e.get("requestURI", "")]

    def restart(self) -> None:
        self.mark = self.audit.mark()
