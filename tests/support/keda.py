"""KEDA's operator as a plain process (tests/integration/test_keda_operator.py).

Built from its Go module by hack/build-keda.sh (cached outside the clone;
about 20 minutes the first time, with progress) and run out of cluster with
the admin kubeconfig, watching one namespace. Its CRDs are the cluster's
(hack/cluster.sh installs them). Its metrics gRPC server wants a CA and a
key pair: the control plane's own serve (nothing connects to it here, as no
KEDA metrics API server runs: KEDA's part below is the 0 <-> 1 scaling it
does itself; its HPA, keda-hpa-<name>, owns 1 <-> N)."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from support.cluster import REPO
from support.process import stop_process
from support.waiting import wait_until


def build_keda(show_progress) -> Path:
    """hack/build-keda.sh: the cached binary, or a build with its progress on screen."""
    with show_progress():
        proc = subprocess.run([str(REPO / "hack" / "build-keda.sh")], stdout=subprocess.PIPE, stderr=sys.stderr,
                              text=True)
    assert proc.returncode == 0, "hack/build-keda.sh failed (its output is above)"
    return Path(proc.stdout.strip())


@contextmanager
def keda_operator(cluster, namespace: str, workdir: Path, show_progress):
    """KEDA's operator watching `namespace`, started before this yields its log's path."""
    binary = build_keda(show_progress)
    certs = workdir / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    for name, source in (("ca.crt", "ca.crt"), ("tls.crt", "apiserver.crt"), ("tls.key", "apiserver.key")):
        (certs / name).write_bytes((cluster.dir / "pki" / source).read_bytes())
    log = workdir / "keda-operator.log"
    env = {**os.environ, **cluster.env, "WATCH_NAMESPACE": namespace, "POD_NAMESPACE": namespace,
           "KEDA_CLUSTER_OBJECT_NAMESPACE": namespace}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(binary), f"--kubeconfig={cluster.kubeconfig}", f"--cert-dir={certs}", "--metrics-bind-address=0",
             "--health-probe-bind-address=127.0.0.1:0", "--metrics-service-bind-address=127.0.0.1:0",
             "--zap-encoder=console", "--zap-log-level=info"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is None and "Starting workers" in log.read_text(errors="replace")
                   and "ScaledObject" in log.read_text(errors="replace"),
                   timeout=60, what="KEDA's operator to start its ScaledObject controller",
                   describe=lambda: f"exit code {proc.poll()}; its log:\n{tail(log)}")
        yield log
    finally:
        # KEDA puts its finalizer on every ScaledObject it serves: they must
        # go while it still runs, or the namespace never finishes deleting
        # (nor, later, KEDA's CRD). The models first, so that the operator
        # does not write their ScaledObjects again.
        try:
            cluster.kubectl("-n", namespace, "delete", "modeldeployments", "--all", "--wait=true", timeout=90)
            wait_until(lambda: not cluster.kubectl("-n", namespace, "get", "scaledobjects", "-o", "name").stdout.strip(),
                       timeout=60, what="KEDA to let go of its ScaledObjects",
                       describe=lambda: f"exit code {proc.poll()}; its log:\n{tail(log)}")
        finally:
            stop_process(proc, grace=15)
            for left in cluster.kubectl("-n", namespace, "get", "scaledobjects", "-o", "name").stdout.split():
                cluster.kubectl("-n", namespace, "patch", left, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                                check=False)


def tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])
