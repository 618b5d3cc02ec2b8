"""A broken model on the real data plane: v3 is random bytes where the model
file should be. MLServer on real-0 cannot load it; the canary's pod never
turns ready (its probe asks about the model, /v2/models/<name>/ready), the
operator rolls back with what the pod really did in the message, and stable
v2 answers every request of the whole episode."""
from __future__ import annotations

import json
import random
import time

from support import real_node
from support.inference import model_on_real_node, predict_once, requests_meanwhile, sklearn_from_store
from support.model_store import pod_facing_host, train_sklearn_model
from support.models import apply_md, condition, get_md, is_true, model_deployment, status_view
from support.waiting import wait_until

NAME_LABEL = "modeldeploy.io/name"


def test_a_corrupt_model_rolls_back_with_the_pods_real_state_and_stable_answers_every_request(
        cluster, real_namespace, real_operator, serving_images, model_store, tmp_path):
    ns, name = real_namespace, "iris"
    started = time.monotonic()
    model, sample = train_sklearn_model(tmp_path / "v2", variant=2)
    row = [float(x) for x in sample[0]]
    good = model.predict([sample[0]])[0].item()
    (tmp_path / "v3").mkdir()
    (tmp_path / "v3" / "model.joblib").write_bytes(random.Random(3).randbytes(4096))
    model_store.put({f"{ns}/{name}/{v}/model.joblib": tmp_path / v / "model.joblib" for v in ("v2", "v3")})
    host = pod_facing_host(cluster.dir)
    assert host, f"no NODE_HOST_IP in {cluster.dir / 'ports'}: the cluster has no real node"
    cluster.apply(ns, model_store.secret("model-store", host=host))

    # One stable pod; the canary's one pod would take 50%, but it never turns
    # ready. The deadline bounds a canary that neither crashes nor gets ready.
    doc = model_on_real_node(model_deployment(name, version="v2", replicas=1, rollout={
        "progressDeadlineSeconds": 120, "steps": [{"setWeight": 50}, {"pause": {}}]}))
    sklearn_from_store(doc, model_store, f"{ns}/{name}/v2", "v2")
    apply_md(cluster, ns, doc)
    selector = f"{NAME_LABEL}={name}"
    report = lambda: (status_view(get_md(cluster, ns, name)), real_node.pod_report(cluster, ns, selector))  # noqa: E731

    def ready_on_v2():
        md = get_md(cluster, ns, name)
        st = md.get("status", {})
        return (is_true(md, "Ready") and st.get("observedGeneration") == md["metadata"]["generation"]
                and (st.get("stable") or {}).get("modelVersion") == "v2" and md)

    wait_until(ready_on_v2, timeout=300, what=f"{ns}/{name} Ready on v2", describe=report)
    [stable_pod] = cluster.core.list_namespaced_pod(ns, label_selector=selector).items
    url = f"http://{cluster.core.read_namespaced_service(name, ns).spec.cluster_ip}"
    assert predict_once(url, name, row) == good

    # Requests the whole episode long, one after the other, each on a new connection.
    canary_states: set[str] = set()
    with requests_meanwhile(url, name, row) as results:
        shipped = time.monotonic()
        v3 = json.loads(json.dumps(doc))
        v3["spec"]["model"].update(uri=model_store.uri(f"{ns}/{name}/v3"), version="v3")
        apply_md(cluster, ns, v3)

        def rolled_back():
            for pod in cluster.core.list_namespaced_pod(ns, label_selector=f"{selector},modeldeploy.io/role=canary").items:
                ready = any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())
                canary_states.add("ready" if ready else "not ready")
            md = get_md(cluster, ns, name)
            return (md.get("status", {}).get("phase") == "RolledBack"
                    and md["status"].get("observedGeneration") == md["metadata"]["generation"] and md)

        md = wait_until(rolled_back, timeout=300, what=f"{ns}/{name} RolledBack", describe=report)
        rolled_back_at = time.monotonic()
        wait_until(lambda: [p.metadata.name for p in cluster.core.list_namespaced_pod(ns, label_selector=selector).items]
                   == [stable_pod.metadata.name], timeout=120, what="only the stable pod left", describe=report)
    episode = time.monotonic() - shipped

    assert canary_states == {"not ready"}, f"the corrupt model's pod was seen {canary_states}"
    stalled = condition(md, "Stalled")
    assert stalled and stalled["status"] == "True" and stalled["reason"] == "RolledBack", status_view(md)
    # The real reason: the canary's pod and what it did (its restarts and how
    # its server last ended, or that it never got ready).
    message = stalled["message"]
    assert f"{name}-canary-" in message, message
    assert ("last terminated with exit code" in message and ("crash-looping" in message or "restarted" in message)
            or "not ready" in message), message
    assert md["status"]["stable"]["modelVersion"] == "v2", status_view(md)
    # Stable answered every request, with v2's prediction, the whole time.
    assert len(results) >= 50, f"only {len(results)} requests in {episode:.0f} s"
    assert results == [good] * len(results), {str(a)[:200]: results.count(a) for a in results}
    [pod] = cluster.core.list_namespaced_pod(ns, label_selector=selector).items
    assert pod.status.container_statuses[0].restart_count == 0, real_node.pod_report(cluster, ns, selector)
    print(f"\na corrupt model: v2 Ready {shipped - started:.0f} s; v3 RolledBack {rolled_back_at - shipped:.0f} s "
          f"after it was applied; {len(results)}/{len(results)} requests answered by v2 in {episode:.0f} s; "
          f"message: {message}")
