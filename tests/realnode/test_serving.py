"""A real model, served for real: a scikit-learn model trained here, uploaded
to the model store, downloaded by the storage initializer (kserve-storage)
with the user's credentials, loaded by MLServer 1.7.1 on real-0, and answering
V2 inference requests through the ClusterIP of its Service with the same
predictions as the model in this process."""
from __future__ import annotations

import json
import re
import sys
import urllib.request

from support import real_node
from support.inference import model_on_real_node, sklearn_from_store
from support.model_store import pod_facing_host, train_sklearn_model
from support.models import apply_md, condition, get_md, is_true, model_deployment, status_view
from support.waiting import wait_until

NAME_LABEL = "modeldeploy.io/name"


def infer(url: str, name: str, rows) -> dict:
    """POST /v2/models/<name>/infer (the V2 inference protocol) with one FP64 tensor."""
    body = {"inputs": [{"name": "predict", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                        "data": [float(x) for row in rows for x in row]}]}
    request = urllib.request.Request(f"{url}/v2/models/{name}/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())


def get_status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.status


def test_a_trained_sklearn_model_loads_on_mlserver_and_answers_through_its_service(
        cluster, real_namespace, real_operator, serving_images, model_store, tmp_path):
    ns, name = real_namespace, "iris"
    model, sample = train_sklearn_model(tmp_path / "v1")
    model_store.put({f"{ns}/{name}/v1/model.joblib": tmp_path / "v1" / "model.joblib"})
    host = pod_facing_host(cluster.dir)
    assert host, f"no NODE_HOST_IP in {cluster.dir / 'ports'}: the cluster has no real node"
    cluster.apply(ns, model_store.secret("model-store", host=host))

    doc = model_on_real_node(model_deployment(name, replicas=1))
    sklearn_from_store(doc, model_store, f"{ns}/{name}/v1", "v1")
    apply_md(cluster, ns, doc)

    selector = f"{NAME_LABEL}={name}"
    pods = lambda: cluster.core.list_namespaced_pod(ns, label_selector=selector).items  # noqa: E731
    report = lambda: (status_view(get_md(cluster, ns, name)), real_node.pod_report(cluster, ns, selector))  # noqa: E731
    # Every look on the way: the ModelDeployment is never Ready while no pod is.
    seen: list[tuple[bool, bool]] = []

    def ready():
        md = get_md(cluster, ns, name)
        pod_ready = any(c.type == "Ready" and c.status == "True"
                        for p in pods() for c in (p.status.conditions or []))
        seen.append((is_true(md, "Ready"), pod_ready))
        return is_true(md, "Ready") and md["status"].get("observedGeneration") == md["metadata"]["generation"] and md

    # Two cores shared with the rest of the suite: starting the server and
    # loading the model takes about 15 s alone, several times that under load.
    md = wait_until(ready, timeout=300, what=f"{ns}/{name} Ready on {real_node.NAME}", describe=report)
    assert not any(md_ready and not pod_ready for md_ready, pod_ready in seen), seen
    assert any(not md_ready for md_ready, _ in seen), "Ready at the first look: nothing was waited on"

    [pod] = pods()
    assert pod.spec.node_name == real_node.NAME, pod.spec.node_name
    [init] = pod.status.init_container_statuses
    assert init.image == serving_images.refs["storage-initializer"], init.image
    assert init.state.terminated and init.state.terminated.exit_code == 0, real_node.pod_report(cluster, ns, selector)
    [server] = pod.status.container_statuses
    assert server.image == serving_images.refs["mlserver"], server.image
    assert server.ready and server.state.running and server.restart_count == 0, real_node.pod_report(cluster, ns, selector)
    # The pod turned Ready (its probe, /v2/health/ready, passed) before the ModelDeployment did.
    pod_ready_at = next(c.last_transition_time for c in pod.status.conditions if c.type == "Ready")
    md_ready_at = condition(md, "Ready")["lastTransitionTime"]
    assert pod_ready_at.strftime("%Y-%m-%dT%H:%M:%SZ") <= md_ready_at, (pod_ready_at, md_ready_at)
    # MLServer itself says the model is loaded.
    logs = cluster.kubectl("-n", ns, "logs", pod.metadata.name, "-c", "model-server").stdout
    assert f"Loaded model '{name}'" in logs, logs[-3000:]

    # Through the Service's ClusterIP (kube-proxy on real-0), as a client in the cluster would.
    ip = cluster.core.read_namespaced_service(name, ns).spec.cluster_ip
    url = f"http://{ip}"
    assert wait_until(lambda: get_status(f"{url}/v2/models/{name}/ready") == 200, timeout=30,
                      what=f"{url}/v2/models/{name}/ready to answer 200", describe=report)
    answer = infer(url, name, sample.tolist())
    expected = model.predict(sample).tolist()
    [output] = answer["outputs"]
    assert output["data"] == expected, (answer, expected)
    assert answer["model_name"] == name, answer
    # A second, different batch: the server computes, it does not echo.
    rows = sample[::-1].tolist()[:4]
    assert infer(url, name, rows)["outputs"][0]["data"] == model.predict(sample[::-1][:4]).tolist()

    # The model's own metrics, where the PodMonitor in manifests/monitoring
    # scrapes them (the pod's container port named "metrics"), with the labels
    # its relabelings read off the pod.
    scrape_and_check_model_metrics(cluster, ns, name, pod)


def scrape_and_check_model_metrics(cluster, ns: str, name: str, pod) -> None:
    import yaml

    from support.cluster import REPO

    monitor = yaml.safe_load((REPO / "manifests" / "monitoring" / "podmonitor-models.yaml").read_text())
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    server = next(c for c in pod.spec.containers if c.name == "model-server")
    [port] = [p.container_port for p in server.ports if p.name == endpoint["port"]]
    with urllib.request.urlopen(f"http://{pod.status.pod_ip}:{port}{endpoint['path']}", timeout=10) as resp:
        text = resp.read().decode()
    inference = [line for line in text.splitlines()
                 if line.startswith("model_infer_request_success") and f'model="{name}"' in line]
    print("\nMLServer metrics scraped:", len(text.splitlines()), "lines;", inference[:3])
    assert inference, text[:3000]
    # Every runtime metric the models dashboard queries is one MLServer serves.
    sys.path.insert(0, str(REPO / "tests" / "unit"))
    from test_manifests import model_metric_families

    families = {re.sub(r"_total$", "", line.split()[2]) for line in text.splitlines() if line.startswith("# TYPE ")}
    assert model_metric_families() <= families, (model_metric_families() - families, sorted(families))
    assert any(float(line.rsplit(" ", 1)[1]) >= 2 for line in inference), inference
    labels = pod.metadata.labels | {f"annotation:{k}": v for k, v in (pod.metadata.annotations or {}).items()}
    for relabel in endpoint["relabelings"]:
        [source] = relabel["sourceLabels"]
        for prefix, kind in (("__meta_kubernetes_pod_label_", ""), ("__meta_kubernetes_pod_annotation_", "annotation:")):
            if source.startswith(prefix):
                wanted = source[len(prefix):]
                found = [k for k in labels if k.startswith(kind)
                         and re.sub(r"[^a-zA-Z0-9_]", "_", k[len(kind):]) == wanted]
                assert found, f"{relabel['targetLabel']}: the pods carry no {kind or 'label:'}{wanted}"
    assert all(k in pod.metadata.labels for k in monitor["spec"]["selector"]["matchLabels"])
