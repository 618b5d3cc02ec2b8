"""Talking to real models on real-0: placing a ModelDeployment there and
sending V2 inference requests through its Service (tests/realnode)."""
from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from support import real_node


def model_on_real_node(doc: dict) -> dict:
    """A ModelDeployment document whose pods run on real-0 (its label and taint)."""
    doc["spec"]["nodeSelector"] = {real_node.KIND_LABEL[0]: real_node.KIND_LABEL[1]}
    doc["spec"]["tolerations"] = [{"key": real_node.TAINT, "operator": "Exists", "effect": "NoSchedule"}]
    return doc


def sklearn_from_store(doc: dict, model_store, path: str, version: str) -> dict:
    """Point `doc` at an sklearn model in the model store, read with the
    user's Secret `model-store`, on a pod small enough for the 2 cores."""
    doc["spec"]["model"] = {"uri": model_store.uri(path), "version": version, "format": "sklearn",
                            "credentials": {"secretName": "model-store"}}
    doc["spec"]["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
    return doc


def predict_once(url: str, name: str, row: list[float], headers: dict[str, str] | None = None):
    """One V2 inference request on a new connection (urllib opens one per
    request: kube-proxy in iptables mode picks the pod per connection);
    `headers`: sent besides (e.g. traffic.canaryHeaders)."""
    body = {"inputs": [{"name": "predict", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
    request = urllib.request.Request(f"{url}/v2/models/{name}/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Connection": "close",
                                              **(headers or {})},
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        [output] = json.loads(resp.read())["outputs"]
    return output["data"][0]


def answers(url: str, name: str, row: list[float], count: int, workers: int = 4,
            headers: dict[str, str] | None = None) -> list:
    """`count` predictions of `row`, each on its own connection; an error is kept as its text."""
    def one(_):
        try:
            return predict_once(url, name, row, headers)
        except urllib.error.HTTPError as exc:
            return f"error: HTTP {exc.code} {exc.read()[:200]!r}"
        except Exception as exc:  # noqa: BLE001 - counted, then asserted on
            return f"error: {exc!r}"
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


@contextmanager
def requests_meanwhile(url: str, name: str, row: list[float], *, batch: int = 1, workers: int = 1,
                       pause: float = 0.0):
    """Requests for `row` sent from a background thread for as long as the
    block runs, `batch` at a time on `workers` connections, `pause` seconds
    apart; yields the list their answers (errors as text) are added to."""
    results: list = []
    stop = threading.Event()

    def client():
        while not stop.wait(pause):
            results.extend(answers(url, name, row, batch, workers=workers))

    sender = threading.Thread(target=client, daemon=True)
    sender.start()
    try:
        yield results
    finally:
        stop.set()
        sender.join(timeout=30)


def two_versions_in_store(cluster, model_store, tmp_path, namespace: str, name: str):
    """Two sklearn models that answer one sample row differently, uploaded
    as <namespace>/<name>/v1 and v2 to the model store, whose credentials
    Secret `model-store` is applied in `namespace`. Returns (row, v1's
    answer, v2's answer)."""
    from support.model_store import pod_facing_host, train_sklearn_model

    v1, sample = train_sklearn_model(tmp_path / "v1")
    v2, _ = train_sklearn_model(tmp_path / "v2", variant=2)
    old, new = v1.predict([sample[0]])[0].item(), v2.predict([sample[0]])[0].item()
    assert old != new, (old, new)
    model_store.put({f"{namespace}/{name}/{v}/model.joblib": tmp_path / v / "model.joblib" for v in ("v1", "v2")})
    host = pod_facing_host(cluster.dir)
    assert host, f"no NODE_HOST_IP in {cluster.dir / 'ports'}: the cluster has no real node"
    cluster.apply(namespace, model_store.secret("model-store", host=host))
    return [float(x) for x in sample[0]], old, new
