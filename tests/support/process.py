"""The operator as a separate process (`modeldeploy run`), for tests that
kill it, restart it, run two at once or read its /metrics, and for the
benchmark (bench/run.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from pathlib import Path

from support.cluster import REPO, Cluster
from support.operator import TEST_ENV, free_port, install_crd, wait_until_served
from support.waiting import wait_until



def stop_process(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL once `grace` seconds pass: a helper server
    (Prometheus, the model store) never outlives its fixture."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

class OperatorProcess:
    def __init__(self, cluster: Cluster, namespace: str, log: Path, extra_args: tuple[str, ...] = (),
                 kubeconfig: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.cluster, self.namespace, self.log = cluster, namespace, log
        self.extra_args = extra_args
        self.extra_env = env or {}  # on top of the test settings, e.g. MODELDEPLOY_PEERING_LIFETIME
        # Another identity than the cluster admin, e.g. a ServiceAccount's
        # minted kubeconfig, to run the operator with exactly its RBAC.
        self.kubeconfig = kubeconfig
        self.proc: subprocess.Popen | None = None
        self.port = free_port()

    def start(self) -> "OperatorProcess":
        # As `run --install-crd` would (idempotent): a test module run alone,
        # or first on an xdist worker, cannot count on an earlier test for it;
        # and kopf's first scan of the API must already see the kind.
        install_crd(self.cluster)
        wait_until_served(self.cluster)
        env = {**self.cluster.env, **TEST_ENV, **self.extra_env}
        identity: tuple[str, ...] = ()
        if self.kubeconfig:
            env["KUBECONFIG"] = str(self.kubeconfig)
            identity = ("--kubeconfig", str(self.kubeconfig))
        out = self.log.open("a")
        self.proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "modeldeploy"), "run", "--namespace", self.namespace,
             f"--liveness=http://127.0.0.1:{self.port}/healthz", *identity, *self.extra_args],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status == 200,
                   timeout=60, what="the operator process to serve its probe",
                   describe=lambda: self.log.read_text()[-1500:])
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=15)

    def stop(self, grace: float = 30) -> None:
        """SIGTERM, as Ctrl-C or the kubelet would; SIGKILL if it is still
        running after `grace` seconds."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "OperatorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill(signal.SIGTERM)


class MeteredOperator(OperatorProcess):
    """`modeldeploy run` as a process of its own, serving /metrics on a
    private port so the caller can tell which process wrote what."""

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

    def samples(self) -> dict[str, float]:
        """Every sample /metrics serves, by its name and labels as written
        there, e.g. `modeldeploy_reconciles_total{result="ok"}`."""
        out: dict[str, float] = {}
        for line in self.metrics().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def writes(self) -> int:
        """Every write request this process made (apply, patch, delete, Event)."""
        return int(sum(v for k, v in self.samples().items() if k.startswith("modeldeploy_api_writes_total{")))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
