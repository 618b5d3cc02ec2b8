"""An MLflow registry alias followed on the real data plane: three sklearn
models in the S3 model store, registered as versions 1, 2 and 3 of `iris` in
a real `mlflow server` (tests/support/mlflow_registry.py) with s3:// sources
on that store. `models:/iris@champion` is resolved by the operator (a process
on the host, told the registry's address), and the real storage initializer
on real-0 downloads the resolved artifact with the user's keys; MLServer
answers with the model the alias names. Moving the alias to 2 rolls it out
through a canary; moving it to 3, a model file of random bytes that MLServer
cannot load, is rolled back on the canary pod's real failure, recorded
against version 3, while version 2 answers every request."""
from __future__ import annotations

import random
import time
from contextlib import ExitStack

from support import real_node
from support.inference import model_on_real_node, predict_once, requests_meanwhile
from support.mlflow_registry import running_mlflow
from support.model_store import pod_facing_host, train_sklearn_model
from support.models import apply_md, condition, get_md, is_true, model_deployment
from support.process import OperatorProcess
from support.waiting import wait_until

NAME_LABEL = "modeldeploy.io/name"


def test_moving_an_mlflow_alias_rolls_real_models_out_and_back(
        cluster, real_namespace, serving_images, model_store, tmp_path):
    ns, name = real_namespace, "iris"
    started = time.monotonic()
    m1, sample = train_sklearn_model(tmp_path / "v1")
    m2, _ = train_sklearn_model(tmp_path / "v2", variant=2)
    (tmp_path / "v3").mkdir()
    (tmp_path / "v3" / "model.joblib").write_bytes(random.Random(3).randbytes(4096))
    row = [float(x) for x in sample[0]]
    by_v1, by_v2 = m1.predict([sample[0]])[0].item(), m2.predict([sample[0]])[0].item()
    assert by_v1 != by_v2
    model_store.put({f"{ns}/{name}/{v}/model.joblib": tmp_path / v / "model.joblib" for v in ("v1", "v2", "v3")})
    host = pod_facing_host(cluster.dir)
    assert host, f"no NODE_HOST_IP in {cluster.dir / 'ports'}: the cluster has no real node"
    cluster.apply(ns, model_store.secret("model-store", host=host))

    with ExitStack() as running:
        mlflow = running.enter_context(running_mlflow(tmp_path / "mlflow"))
        registered = {v: mlflow.register(name, model_store.uri(f"{ns}/{name}/v{v}")) for v in ("1", "2", "3")}
        assert [version for version, _ in registered.values()] == ["1", "2", "3"], registered
        run = {v: run_id for v, (_, run_id) in registered.items()}
        mlflow.set_alias(name, "champion", "1")
        registry_up = time.monotonic()
        running.enter_context(OperatorProcess(cluster, ns, tmp_path / "operator.log",
                                              extra_args=("--runtimes", str(serving_images.runtimes)),
                                              env={"MODELDEPLOY_MLFLOW_TRACKING_URI": mlflow.url}))

        # One stable pod; the canary's one pod takes 50% for 5 s, then is promoted.
        doc = model_on_real_node(model_deployment(name, version="champion", replicas=1, rollout={
            "progressDeadlineSeconds": 120, "steps": [{"setWeight": 50}, {"pause": {"duration": "5s"}}]}))
        doc["spec"]["model"] = {"uri": f"models:/{name}@champion", "version": "champion", "format": "sklearn",
                                "credentials": {"secretName": "model-store"}, "registry": {"pollInterval": "10s"}}
        doc["spec"]["resources"] = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}
        apply_md(cluster, ns, doc)
        selector = f"{NAME_LABEL}={name}"

        def report():
            st = get_md(cluster, ns, name).get("status", {})
            return ({k: st.get(k) for k in ("phase", "message", "model", "rollout", "stable", "canary")},
                    (st.get("history") or [])[-3:], real_node.pod_report(cluster, ns, selector))

        def settled(version: str, result: str):
            """Nothing in flight, the alias read as `version`, the last history entry `result`."""
            md = get_md(cluster, ns, name)
            st = md.get("status", {})
            history = st.get("history") or [{}]
            return (st.get("observedGeneration") == md["metadata"]["generation"]
                    and (st.get("model") or {}).get("version") == version and history[-1].get("result") == result
                    and not cluster.apps.list_namespaced_deployment(
                        ns, label_selector=f"{selector},modeldeploy.io/role=canary").items
                    and md)

        def registry_of(entry: dict) -> tuple:
            return entry["result"], (entry.get("registry") or {}).get("version"), (entry.get("registry") or {}).get(
                "runId")

        md = wait_until(lambda: is_true(m := settled("1", "Deployed"), "Ready") and m, timeout=300,
                        what=f"{ns}/{name} Ready on version 1", describe=report)
        v1_ready = time.monotonic()
        assert md["status"]["model"]["resolvedUri"] == model_store.uri(f"{ns}/{name}/v1"), md["status"]["model"]
        url = f"http://{cluster.core.read_namespaced_service(name, ns).spec.cluster_ip}"
        assert predict_once(url, name, row) == by_v1

        # The alias moves to 2: read within the poll interval, a canary, promoted.
        mlflow.set_alias(name, "champion", "2")
        moved = time.monotonic()
        md = wait_until(lambda: is_true(m := settled("2", "Promoted"), "Ready") and m, timeout=240,
                        what=f"{ns}/{name} promoted to version 2", describe=report)
        promoted = time.monotonic()
        assert md["status"]["model"]["runId"] == run["2"], md["status"]["model"]
        assert [registry_of(h) for h in md["status"]["history"]] == [("Deployed", "1", run["1"]),
                                                                      ("Promoted", "2", run["2"])]
        wait_until(lambda: real_node.only_pods_left(cluster, ns, selector, 1), timeout=120,
                   what="only the stable pod of version 2 left", describe=report)
        assert predict_once(url, name, row) == by_v2

        # The alias moves to 3, which MLServer cannot load: rolled back, version 2 answering all along.
        [stable_pod] = cluster.core.list_namespaced_pod(ns, label_selector=selector).items
        with requests_meanwhile(url, name, row, pause=0.05) as during:
            mlflow.set_alias(name, "champion", "3")
            shipped = time.monotonic()
            md = wait_until(lambda: (m := settled("3", "RolledBack")) and m["status"].get("phase") == "RolledBack"
                            and m, timeout=240, what=f"{ns}/{name} version 3 rolled back", describe=report)
            rolled_back = time.monotonic()
            wait_until(lambda: [p.metadata.name for p in cluster.core.list_namespaced_pod(
                ns, label_selector=selector).items] == [stable_pod.metadata.name], timeout=120,
                       what="only the stable pod of version 2 left", describe=report)
        assert registry_of(md["status"]["history"][-1]) == ("RolledBack", "3", run["3"])
        stalled = condition(md, "Stalled")
        assert stalled and stalled["status"] == "True" and stalled["reason"] == "RolledBack", md["status"]
        assert f"{name}-canary-" in stalled["message"], stalled["message"]
        assert len(during) >= 20 and during == [by_v2] * len(during), {str(a)[:200]: during.count(a) for a in during}
        assert predict_once(url, name, row) == by_v2
    print(f"\nmlflow alias on the real node: registry up {registry_up - started:.0f} s, version 1 Ready "
          f"{v1_ready - registry_up:.0f} s later; alias to 2 promoted {promoted - moved:.0f} s after the move; "
          f"alias to 3 rolled back {rolled_back - shipped:.0f} s after the move, {len(during)}/{len(during)} requests answered by version 2 meanwhile; "
          f"total {time.monotonic() - started:.0f} s; {stalled['message']}")
