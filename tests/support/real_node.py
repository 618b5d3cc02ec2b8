"""The real node, real-0 (hack/real-node.sh): containerd, a kubelet and
kube-proxy next to the kwok nodes, running real containers. Only pods that
select it and tolerate its taint land there.

If it could not start, `hack/cluster.sh up` kept the kwok cluster and wrote
why into real-node.error; the tests that need the node fail with that text
(they never skip)."""
from __future__ import annotations

import copy
import json

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
