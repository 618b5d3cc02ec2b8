"""The operator under test, running in-process (kopf's KopfRunner) against
the local control plane, with the CRD installed from crds/ as a user would."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field

import kopf
from kopf.testing import KopfRunner

from support.cluster import REPO, Cluster
from support.waiting import WaitTimeout, wait_until

CRD = REPO / "crds" / "modeldeployment.yaml"
# Namespaces of this test session start with it (see tests/conftest.py).
SESSION_PREFIX = f"t{uuid.uuid4().hex[:4]}"
OPERATOR_AGENTS = ("modeldeploy-operator/", "kopf/")

# Short periods so the tests see a full resync quickly.
TEST_ENV = {
    "MODELDEPLOY_RESYNC_SECONDS": "6",
}


# The memo of every in-process operator started in this process, in order:
# the tests read the controller's counters from it directly. (The probe
# endpoint has them too, but kopf caches probe values for 10 seconds, so a
# test waiting on it waits up to 10 s more than the operator takes, and may
# read a count taken before the moment it starts waiting.)
_MEMOS: list[kopf.Memo] = []


@kopf.on.startup()
async def _remember_memo(memo: kopf.Memo, **_) -> None:
    _MEMOS.append(memo)


def install_crd(cluster: Cluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    # kubectl wait fails at once (not waits) while the CRD has no status yet.
    wait_until(lambda: cluster.kubectl("wait", "--for=condition=Established", "--timeout=5s",
                                       "crd/modeldeployments.modeldeploy.io", check=False).returncode == 0,
               timeout=30, what="the ModelDeployment CRD Established")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningOperator:
    runner: KopfRunner
    health_url: str
    memo: kopf.Memo

    def health(self) -> dict:
        """What the probe endpoint serves (kopf caches it for 10 s)."""
        with urllib.request.urlopen(self.health_url, timeout=2) as resp:
            return json.loads(resp.read())

    def progress(self) -> dict:
        """The probes' values as the handlers compute them, now."""
        from modeldeploy import handlers

        async def read() -> dict:
            return {"ready": await handlers.probe_ready(memo=self.memo),
                    "reconciles": await handlers.probe_reconciles(memo=self.memo),
                    "resyncs": await handlers.probe_resyncs(memo=self.memo),
                    "idle": await handlers.probe_idle(memo=self.memo)}

        return asyncio.run(read())

    def wait_for_resync(self, timeout: float = 30) -> None:
        """Until the operator has completed one more full pass over every
        ModelDeployment (the resync counter rose and the queue drained)."""
        start = self.progress()["resyncs"]
        wait_until(lambda: (h := self.progress())["resyncs"] > start and h["idle"],
                   timeout=timeout, what="a full resync pass", describe=self.progress)


def wait_until_served(cluster: Cluster) -> None:
    """Until discovery lists ModelDeployments, as `modeldeploy run
    --install-crd` waits: Established comes first and discovery a moment
    later, and an operator whose first scan of the API misses the kind never
    watches it (kopf rescans only when a CRD changes)."""
    discovery = lambda: cluster.kubectl("get", "--raw", "/apis/modeldeploy.io/v1alpha1", check=False)  # noqa: E731
    wait_until(lambda: '"name":"modeldeployments"' in discovery().stdout.replace(" ", ""), timeout=30,
               what="discovery to list modeldeployments", describe=lambda: discovery().stdout[:300])


def wait_until_watching_new_namespaces(cluster: Cluster, timeout: float = 90) -> None:
    """Until a namespace created now is watched. kopf (1.x, with a namespace
    pattern) lists the namespaces, then starts its watch with a list of its
    own whose items it ignores: a namespace created between the two lists is
    never watched, and a test that creates one right after the operator
    started waits for a status forever (seen about 1 time in 3). So: create
    throwaway namespaces until two in a row are served, the second created
    after the first was seen -- after kopf's first list, so it came through
    the watch -- then every later namespace is."""
    from support.models import apply_md, get_md, model_deployment

    deadline, seen, tried = time.monotonic() + timeout, 0, []
    while seen < 2:
        assert time.monotonic() < deadline, f"the operator served none of the namespaces {tried}"
        ns = f"{SESSION_PREFIX}-watch-{uuid.uuid4().hex[:5]}"
        tried.append(ns)
        cluster.kubectl("create", "namespace", ns)
        try:
            apply_md(cluster, ns, model_deployment("watched", replicas=1))
            try:
                wait_until(lambda: (get_md(cluster, ns, "watched").get("status") or {}).get("observedGeneration"),
                           timeout=10, what=f"a status in {ns}")
                seen += 1
            except WaitTimeout:
                seen = 0  # created inside kopf's blind window: start over with a new one
        finally:
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@contextmanager
def running_operator(cluster: Cluster, extra_env: dict[str, str] | None = None):
    install_crd(cluster)
    wait_until_served(cluster)
    # The controller reads its namespaces from the environment, as `modeldeploy
    # run --namespace` sets them; kopf's own `run` (this runner) sets only
    # kopf's. Without it the warm-up listed every namespace, and the resync
    # reconciled other tests' models from copies no watch kept fresh (CI saw
    # promotions undone and revisions flip between two runtime tables).
    env = {"KUBECONFIG": str(cluster.kubeconfig), "MODELDEPLOY_NAMESPACES": f"{SESSION_PREFIX}-*", **TEST_ENV,
           **(extra_env or {})}
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
        started = len(_MEMOS)
        with KopfRunner(args, timeout=30) as runner:
            wait_until(lambda: len(_MEMOS) > started, timeout=60, what="the operator's startup handlers")
            op = RunningOperator(runner, health_url, _MEMOS[started])
            wait_until(lambda: op.health().get("ready"), timeout=60, what="the operator to start")
            wait_until_watching_new_namespaces(cluster)
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


def describe_writes(entries: list[dict]) -> list[str]:
    return [f"{e['verb']} {e['requestURI']}" for e in entries]
