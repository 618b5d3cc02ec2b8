"""The real node, real-0 (hack/real-node.sh): containerd, a kubelet and
kube-proxy next to the kwok nodes, running real containers. Only pods that
select it and tolerate its taint land there.

If it could not start, `hack/cluster.sh up` kept the kwok cluster and wrote
why into real-node.error; the tests that need the node fail with that text
(they never skip)."""
from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from support.cluster import REPO

NAME = "real-0"
KIND_LABEL = ("modeldeploy.io/node-kind", "real")
TAINT = "modeldeploy.io/real-node"
# Built by hack/node/build-images.sh and imported into the node's containerd by `cluster.sh up`.
HELLO_IMAGE = "modeldeploy.local/hello:v1"
PAUSE_IMAGE = "modeldeploy.local/pause:v1"


def require(cluster) -> dict:
    """The real node as the API shows it; fails with the reason recorded at
    `cluster.sh up` when it is not there."""
    error = cluster.dir / "real-node.error"
    if error.exists():
        raise AssertionError(error.read_text())
    proc = cluster.kubectl("get", "node", NAME, "-o", "json", check=False)
    assert proc.returncode == 0, (f"no node {NAME} in {cluster.dir} (started with REAL_NODE=0, or by an older "
                                  f"hack/cluster.sh?): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def on_real_node(pod_spec: dict) -> dict:
    """A copy of ``pod_spec`` that selects real-0 and tolerates its taint."""
    spec = copy.deepcopy(pod_spec)
    spec.setdefault("nodeSelector", {})[KIND_LABEL[0]] = KIND_LABEL[1]
    spec.setdefault("tolerations", []).append({"key": TAINT, "operator": "Exists", "effect": "NoSchedule"})
    return spec


def hello_deployment(name: str, replicas: int = 1, real: bool = True) -> dict:
    """The tiny HTTP server (GET / -> "hello from <pod name>") with a
    readiness probe, on real-0 unless ``real`` is false (then it only selects
    the node, without the toleration)."""
    spec = {
        "containers": [{
            "name": "hello", "image": HELLO_IMAGE, "imagePullPolicy": "Never",
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 1},
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        }],
        "terminationGracePeriodSeconds": 1,
    }
    if real:
        spec = on_real_node(spec)
    else:
        spec["nodeSelector"] = {KIND_LABEL[0]: KIND_LABEL[1]}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": spec}},
    }


def service(name: str, port: int = 80, target: int = 8080) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": target}]}}


# -- The serving images (hack/images/build.sh) on real-0 ------------------------

IMAGES_BUILD = REPO / "hack" / "images" / "build.sh"


@dataclass
class ServingImages:
    """What hack/images/build.sh built: {name: reference} and {name: OCI
    archive} for "mlserver" and "storage-initializer", and the runtime table
    that points the operator at them (`modeldeploy run --runtimes FILE`)."""
    refs: dict[str, str]
    archives: dict[str, Path]
    runtimes: Path


def build_serving_images(show_progress=contextlib.nullcontext) -> ServingImages:
    """Runs hack/images/build.sh: a no-op on a warm cache (~/.cache/modeldeploy/
    images), about 5 minutes on 2 cores the first time. Its progress goes to
    stderr, live inside ``show_progress`` (a context that lets output through
    pytest's capture); a failure carries its tail."""
    with show_progress():
        proc = subprocess.run([str(IMAGES_BUILD)], stdout=subprocess.PIPE, stderr=None, text=True,
                              env={**os.environ, "PYTHON": str(REPO / ".venv" / "bin" / "python")})
    assert proc.returncode == 0, f"hack/images/build.sh failed ({proc.returncode}); its progress above says where"
    summary = json.loads(proc.stdout)
    assert "runtimes" in summary, summary
    images = summary["images"]
    return ServingImages(refs={n: i["ref"] for n, i in images.items()},
                         archives={n: Path(i["archive"]) for n, i in images.items()},
                         runtimes=Path(summary["runtimes"]))


def ctr(cluster, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """containerd's `ctr` against real-0's containerd (in the node's mount
    namespace, the k8s.io namespace the kubelet uses), as hack/real-node.sh
    imports the pause image."""
    node = cluster.dir / "node"
    return subprocess.run(["nsenter", f"--mount={node / 'ns' / 'mnt'}", "ctr", "--address",
                           str(node / "containerd" / "containerd.sock"), "-n", "k8s.io", *args],
                          capture_output=True, text=True, timeout=timeout)


def node_images(cluster) -> set[str]:
    proc = ctr(cluster, "images", "ls", "-q")
    assert proc.returncode == 0, f"ctr images ls on {NAME} failed: {proc.stderr.strip()}"
    return set(proc.stdout.split())


def import_images(cluster, images: ServingImages) -> dict[str, float]:
    """Imports into real-0's containerd the images it does not hold yet (about
    20 s for both, once per cluster); {reference: seconds} for those imported.
    Under a lock in the cluster's directory, so concurrent sessions import
    each image once."""
    took: dict[str, float] = {}
    with open(cluster.dir / "node" / "images.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        present = node_images(cluster)
        for name, ref in images.refs.items():
            if ref in present:
                continue
            started = time.monotonic()
            proc = ctr(cluster, "images", "import", str(images.archives[name]), timeout=600)
            assert proc.returncode == 0, f"ctr images import {images.archives[name]} on {NAME} failed: {proc.stderr}"
            took[ref] = time.monotonic() - started
        missing = set(images.refs.values()) - node_images(cluster)
        assert not missing, f"{NAME} lacks {sorted(missing)} after importing them"
    return took


def pod_report(cluster, namespace: str, selector: str, log_lines: int = 25) -> str:
    """What a failing real-node test shows: each selected pod's node, phase,
    conditions and containers' states (last termination included), the
    namespace's recent events, and the tail of every container's log."""
    out = []
    for pod in cluster.core.list_namespaced_pod(namespace, label_selector=selector).items:
        st = pod.status
        out.append(f"pod {pod.metadata.name} on {pod.spec.node_name}: {st.phase}; conditions "
                   f"{[(c.type, c.status, c.reason, c.message) for c in st.conditions or []]}")
        for c in (st.init_container_statuses or []) + (st.container_statuses or []):
            last = c.last_state.terminated if c.last_state else None
            out.append(f"  {c.name}: ready={c.ready} restarts={c.restart_count} state={_state(c.state)}"
                       + (f" last={_state(c.last_state)}" if last else ""))
            logs = cluster.kubectl("-n", namespace, "logs", pod.metadata.name, "-c", c.name,
                                   f"--tail={log_lines}", check=False)
            out.append("    | " + (logs.stdout or logs.stderr).strip().replace("\n", "\n    | "))
    events = cluster.core.list_namespaced_event(namespace).items
    events.sort(key=lambda e: e.metadata.creation_timestamp)
    out.append("events:")
    out += [f"  {e.type} {e.involved_object.kind}/{e.involved_object.name} {e.reason}: {e.message}"
            for e in events[-20:]]
    return "\n".join(out)


def _state(state) -> str:
    if state is None:
        return "?"
    if state.running:
        return "running"
    if state.waiting:
        return f"waiting {state.waiting.reason}: {state.waiting.message or ''}".strip()
    if state.terminated:
        t = state.terminated
        return f"terminated exit {t.exit_code} {t.reason}: {(t.message or '').strip()[:300]}"
    return "?"


def only_pods_left(cluster, namespace: str, selector: str, count: int):
    """The pods of `selector` once exactly `count` remain and none is being
    deleted (a wait_until probe): the replaced ones are gone, drained."""
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    return len(pods) == count and not any(p.metadata.deletion_timestamp for p in pods) and pods


def progress_display(request):
    """A context manager factory that lets a long build or start print its
    progress lines through pytest's output capture (a no-op without it)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled if capture else contextlib.nullcontext
