"""The local control plane as the tests see it: started once per session by
hack/cluster.sh (or reused when already up), reached with the real kubectl
built from the same release, and with the official Python client."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SCRIPT = REPO / "hack" / "cluster.sh"
# The control plane the test session uses (tests/conftest.py points KUBECONFIG at it).
SESSION_CLUSTER_DIR = Path(os.environ.get("CLUSTER_DIR", REPO / ".cluster"))


@contextmanager
def control_plane_lock(exclusive: bool, cluster_dir: Path = SESSION_CLUSTER_DIR):
    """A file lock per control plane, across processes (pytest-xdist's
    workers, or sessions sharing a cluster): exclusive to start it or to run
    a test that must run alone, shared to use it. Uncontended in a plain run.

    A turnstile in front keeps a waiting exclusive holder from starving:
    while it waits, no new shared holder gets in, so it runs as soon as the
    tests in flight end. The files live outside the cluster's directory,
    which `hack/cluster.sh down` removes."""
    key = hashlib.sha256(str(cluster_dir.resolve()).encode()).hexdigest()[:12]
    base = Path(tempfile.gettempdir()) / f"modeldeploy-cluster-{key}"
    with open(f"{base}.lock", "a") as main, open(f"{base}.turnstile", "a") as turnstile:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        try:
            fcntl.flock(main, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        finally:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(main, fcntl.LOCK_UN)


class ClusterUnavailable(RuntimeError):
    pass


def read_ports(cluster_dir: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (cluster_dir / "ports").read_text().splitlines() if "=" in line)
    return {k: v for k, v in pairs}


@dataclass
class Cluster:
    dir: Path
    started_here: bool
    # The client's connection pool: as many as the threads that share it
    # (the benchmark's); None keeps the kubernetes client's default, 5 per CPU.
    connections: int | None = None
    kubeconfig: Path = field(init=False)
    bin_dir: Path = field(init=False)
    api: client.ApiClient = field(init=False)

    def __post_init__(self) -> None:
        self.kubeconfig = self.dir / "kubeconfig"
        self.bin_dir = Path(read_ports(self.dir)["BIN_DIR"])
        self.api = config.new_client_from_config(
            config_file=str(self.kubeconfig),
            client_configuration=client.Configuration(connection_pool_maxsize=self.connections))

    @property
    def ports(self) -> dict[str, str]:
        return read_ports(self.dir)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a child process that should talk to this cluster
        with the kubectl of the same release."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        env = self.env
        if kubeconfig:
            env["KUBECONFIG"] = str(kubeconfig)
        proc = subprocess.run([str(self.bin_dir / "kubectl"), *args], input=input, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def apply(self, namespace: str, manifest: dict | list[dict] | str) -> None:
        text = manifest if isinstance(manifest, str) else yaml.safe_dump_all(
            manifest if isinstance(manifest, list) else [manifest])
        self.kubectl("apply", "-n", namespace, "-f", "-", input=text)

    def get_json(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    # Typed clients, built on demand from the one ApiClient.
    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    @property
    def discovery(self) -> client.DiscoveryV1Api:
        return client.DiscoveryV1Api(self.api)


def cluster_is_up(cluster_dir: Path) -> bool:
    env = dict(os.environ, CLUSTER_DIR=str(cluster_dir))
    return subprocess.run([str(CLUSTER_SCRIPT), "status"], env=env, capture_output=True).returncode == 0


def start_cluster(cluster_dir: Path) -> None:
    env = dict(os.environ, CLUSTER_DIR=str(cluster_dir))
    env.setdefault("PYTHON", str(REPO / ".venv" / "bin" / "python"))
    proc = subprocess.run([str(CLUSTER_SCRIPT), "up"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterUnavailable(f"hack/cluster.sh up failed ({proc.returncode}):\n{proc.stderr[-4000:]}")


def stop_cluster(cluster_dir: Path) -> None:
    env = dict(os.environ, CLUSTER_DIR=str(cluster_dir))
    subprocess.run([str(CLUSTER_SCRIPT), "down"], env=env, capture_output=True)


def service_account_kubeconfig(cluster: Cluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a token
    minted by the real API server (TokenRequest), as a pod's would be."""
    token = cluster.kubectl("-n", namespace, "create", "token", account, "--duration=30m").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account,
                                                    "namespace": namespace}}],
        "current-context": account,
    }))
    return path
