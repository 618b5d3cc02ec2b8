"""spec.model.cache on the real node: a claim bound to a hostPath volume on
real-0 (static binding, ReadWriteMany), the storage initializer of the
first pod downloading the model into it (a miss), a second pod of the same
URI (a scale-up) copying it from there without a request to the model store
(a hit), and the operator counting both into modeldeploy_model_cache_total.
Prints each pod's time from scheduled to Ready, cold and warm (README: A
shared model cache)."""
from __future__ import annotations

import os
import subprocess
import sys

import yaml

from support import real_node
from support.inference import model_on_real_node, sklearn_from_store
from support.model_store import pod_facing_host, train_sklearn_model
from support.models import apply_md, get_md, is_true, model_deployment, status_view
from support.process import MeteredOperator
from support.waiting import wait_until

NAME_LABEL = "modeldeploy.io/name"
CLAIM = "models-cache"
# Weights of a size whose download shows (a toy sklearn model is a few KB):
# the store sends it on a miss, the cache copies it on a hit.
PADDING_BYTES = 64 * 1024 * 1024
INITIALIZER_UID = 1000  # the storage initializer's runAsUser (runtime table): the cache must be writable by it


def static_cache_claim(cluster, ns: str, path) -> str:
    """A hostPath PersistentVolume on real-0 bound to the claim CLAIM in `ns`
    (static binding); the volume's name, to delete afterwards."""
    volume = f"{CLAIM}-{ns}"
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": str(path), "type": "Directory"},
                 "claimRef": {"namespace": ns, "name": CLAIM},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [real_node.NAME]}]}]}}}}))
    cluster.apply(ns, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": CLAIM},
                       "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": volume,
                                "resources": {"requests": {"storage": "1Gi"}}}})
    wait_until(lambda: cluster.core.read_namespaced_persistent_volume_claim(CLAIM, ns).status.phase == "Bound",
               timeout=60, what=f"claim {ns}/{CLAIM} bound to {volume}",
               describe=lambda: cluster.kubectl("-n", ns, "describe", "pvc", CLAIM, check=False).stdout)
    return volume


def store_gets(model_store, key: str) -> int:
    """GET requests for the object `key` in moto_server's request log."""
    return sum(1 for line in model_store.log.read_text(errors="replace").splitlines() if "GET " in line and key in line)


def seconds_to_ready(pod) -> float:
    conditions = {c.type: c.last_transition_time for c in pod.status.conditions}
    return (conditions["Ready"] - conditions["PodScheduled"]).total_seconds()


def initializer_result(pod) -> str:
    [init] = pod.status.init_container_statuses
    assert init.state.terminated and init.state.terminated.exit_code == 0, init
    return init.state.terminated.message


def test_a_second_pod_of_the_same_uri_starts_from_the_cache_without_asking_the_store(
        cluster, real_namespace, serving_images, model_store, tmp_path):
    ns, name = real_namespace, "cached"
    # The API server refuses what cannot name a claim.
    bad = model_deployment(name, replicas=1)
    bad["spec"]["model"]["cache"] = {"claimName": "Models_Cache"}
    refused = cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert refused.returncode != 0 and "spec.model.cache.claimName" in refused.stderr, refused.stderr

    cache_dir = cluster.dir / "model-cache" / ns
    cache_dir.mkdir(parents=True)
    os.chown(cache_dir, INITIALIZER_UID, INITIALIZER_UID)
    volume = static_cache_claim(cluster, ns, cache_dir)
    try:
        train_sklearn_model(tmp_path / "v1")
        (tmp_path / "v1" / "padding.bin").write_bytes(os.urandom(PADDING_BYTES))
        prefix = f"{ns}/{name}/v1"
        model_store.put({f"{prefix}/model.joblib": tmp_path / "v1" / "model.joblib",
                         f"{prefix}/padding.bin": tmp_path / "v1" / "padding.bin"})
        host = pod_facing_host(cluster.dir)
        assert host, f"no NODE_HOST_IP in {cluster.dir / 'ports'}: the cluster has no real node"
        cluster.apply(ns, model_store.secret("model-store", host=host))

        with MeteredOperator(cluster, ns, tmp_path / "operator.log",
                             extra_args=("--runtimes", str(serving_images.runtimes))) as operator:
            doc = model_on_real_node(model_deployment(name, replicas=1))
            sklearn_from_store(doc, model_store, prefix, "v1")
            doc["spec"]["model"]["cache"] = {"claimName": CLAIM}
            apply_md(cluster, ns, doc)
            selector = f"{NAME_LABEL}={name}"
            report = lambda: (status_view(get_md(cluster, ns, name)),  # noqa: E731
                              real_node.pod_report(cluster, ns, selector), operator.log_text()[-2000:])

            def ready_pods(count: int):
                pods = cluster.core.list_namespaced_pod(ns, label_selector=selector).items
                ready = [p for p in pods if any(c.type == "Ready" and c.status == "True"
                                                for c in p.status.conditions or ())]
                md = get_md(cluster, ns, name)
                return len(ready) == count == len(pods) and is_true(md, "Ready") and ready

            [cold] = wait_until(lambda: ready_pods(1), timeout=300, what=f"{ns}/{name}: one pod Ready (cache cold)",
                                describe=report)
            assert initializer_result(cold) == "cache: miss", real_node.pod_report(cluster, ns, selector)
            log = cluster.kubectl("-n", ns, "logs", cold.metadata.name, "-c", "storage-initializer").stdout
            assert "model cache: miss for " + model_store.uri(prefix) in log, log
            gets = {f: store_gets(model_store, f"{prefix}/{f}") for f in ("padding.bin", "model.joblib")}
            assert all(gets.values()), (gets, model_store.log.read_text()[-3000:])
            entries = [p.name for p in cache_dir.iterdir() if p.is_dir()]
            assert len(entries) == 1 and len(entries[0]) == 64, entries  # <sha256>/, nothing half-made beside it
            assert (cache_dir / entries[0] / "padding.bin").stat().st_size == PADDING_BYTES

            # A scale-up: the same URI, a new pod, which finds the model in the cache.
            apply_md(cluster, ns, {**doc, "spec": {**doc["spec"], "replicas": 2}})
            pods = wait_until(lambda: ready_pods(2), timeout=300, what=f"{ns}/{name}: two pods Ready", describe=report)
            [warm] = [p for p in pods if p.metadata.name != cold.metadata.name]
            assert initializer_result(warm) == "cache: hit", real_node.pod_report(cluster, ns, selector)
            log = cluster.kubectl("-n", ns, "logs", warm.metadata.name, "-c", "storage-initializer").stdout
            assert "model cache: hit for " + model_store.uri(prefix) in log, log
            assert {f: store_gets(model_store, f"{prefix}/{f}") for f in gets} == gets, "the second pod asked the store"
            # The server of the warm pod loaded the model copied from the cache.
            server_log = cluster.kubectl("-n", ns, "logs", warm.metadata.name, "-c", "model-server").stdout
            assert f"Loaded model '{name}'" in server_log, server_log[-3000:]

            counts = wait_until(
                lambda: (s := operator.samples()).get('modeldeploy_model_cache_total{result="hit"}') == 1 and s,
                timeout=30, what="the operator to count the hit", describe=lambda: operator.metrics()[-3000:])
            assert counts['modeldeploy_model_cache_total{result="miss"}'] == 1, counts

            cold_s, warm_s = seconds_to_ready(cold), seconds_to_ready(warm)
            print(f"\nmodel cache on {real_node.NAME}, {PADDING_BYTES >> 20} MiB model: scheduled to Ready "
                  f"{cold_s:.0f} s cold (miss), {warm_s:.0f} s warm (hit)", file=sys.stderr)
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        cluster.kubectl("delete", "pv", volume, "--wait=false", check=False)
        subprocess.run(["rm", "-rf", str(cache_dir)], check=False)
