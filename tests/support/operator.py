"""The operator under test, running in-process (kopf's KopfRunner) against
the local control plane, with the CRD installed from crds/ as a user would."""
from __future__ import annotations

import json
import os
import socket
import uuid
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass

from kopf.testing import KopfRunner

from support.cluster import REPO, Cluster
from support.waiting import wait_until

CRD = REPO / "crds" / "modeldeployment.yaml"
# Namespaces of this test session start with it (see tests/conftest.py).
SESSION_PREFIX = f"t{uuid.uuid4().hex[:4]}"
OPERATOR_AGENTS = ("modeldeploy-operator/", "kopf/")

# Short periods so the tests see a full resync quickly.
TEST_ENV = {
    "MODELDEPLOY_RESYNC_SECONDS": "6",
}


def install_crd(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s",
                    "crd/modeldeployments.modeldeploy.io")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningOperator:
    runner: KopfRunner
    health_url: str

    def health(self) -> dict:
        with urllib.request.urlopen(self.health_url, timeout=2) as resp:
            return json.loads(resp.read())

    def wait_for_resync(self, timeout: float = 30) -> None:
        """Until the operator has completed one more full pass over every
        ModelDeployment (the resync counter rose and the queue drained)."""
        start = self.health()["resyncs"]
        wait_until(lambda: (h := self.health())["resyncs"] > start and h["idle"],
                   timeout=timeout, what="a full resync pass", describe=self.health)


@contextmanager
def running_operator(cluster: Cluster, extra_env: dict[str, str] | None = None):
    install_crd(cluster)
    env = {"KUBECONFIG": str(cluster.kubeconfig), **TEST_ENV, **(extra_env or {})}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    port = free_port()
    health_url = f"http://127.0.0.1:{port}/healthz"
    # Only this session's namespaces: a test may run a second operator (e.g.
    # `make run`) in a namespace of its own, and two test sessions may share
    # one cluster, without operators fighting.
    args = ["run", f"--namespace={SESSION_PREFIX}-*", "--standalone", f"--liveness={health_url}",
            "-m", "modeldeploy.handlers"]
    try:
        with KopfRunner(args, timeout=30) as runner:
            op = RunningOperator(runner, health_url)
            wait_until(lambda: op.health().get("ready"), timeout=60, what="the operator to start")
            yield op
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class AuditLog:
    """Write requests as the API server recorded them (hack/audit-policy.yaml),
    so a test can count what a client really did rather than what it reports."""

    def __init__(self, cluster: Cluster) -> None:
        self.path = cluster.dir / "logs" / "audit.log"

    def mark(self) -> int:
        return self.path.stat().st_size

    def writes_since(self, mark: int, agents: tuple[str, ...] = OPERATOR_AGENTS) -> list[dict]:
        with self.path.open("rb") as f:
            f.seek(mark)
            entries = [json.loads(line) for line in f.read().splitlines() if line.strip()]
        return [e for e in entries if e.get("userAgent", "").startswith(agents)]


def describe_writes(entries: list[dict]) -> list[str]:
    return [f"{e['verb']} {e['requestURI']}" for e in entries]
