"""The shipped examples, applied exactly as a user would: `kubectl apply -f
examples/...` and `kubectl wait --for=condition=Ready`."""
from __future__ import annotations


import pytest
import yaml

from support.cluster import REPO

EXAMPLES = sorted((REPO / "examples").glob("[0-9][0-9]-*.yaml"))


def model_deployment_in(example) -> dict:
    """The ModelDeployment of an example file (it may carry a ServiceAccount
    or a Secret before it)."""
    [doc] = [d for d in yaml.safe_load_all(example.read_text()) if d and d.get("kind") == "ModelDeployment"]
    return doc


def test_there_are_examples_for_at_least_three_formats():
    formats = {model_deployment_in(p)["spec"]["model"].get("format") for p in EXAMPLES}
    assert len(formats - {None}) >= 3, formats


def make_model_store(cluster, namespace):
    """A statically bound claim for the pvc:// example (no provisioner runs here)."""
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{namespace}-models"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadOnlyMany"], "storageClassName": "",
                   "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/srv/models"},
                   "claimRef": {"namespace": namespace, "name": "model-store"}}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "model-store"},
           "spec": {"accessModes": ["ReadOnlyMany"], "storageClassName": "", "volumeName": pv["metadata"]["name"],
                    "resources": {"requests": {"storage": "1Gi"}}}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pv))
    cluster.apply(namespace, pvc)


def make_cache_volume(cluster, namespace, claim):
    """A volume for the example's own cache claim to bind to (no provisioner
    runs here, and no default StorageClass: a claim without a class binds to
    a volume without one)."""
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{namespace}-{claim}"},
          "spec": {"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                   "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/srv/models-cache"},
                   "claimRef": {"namespace": namespace, "name": claim}}}
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(pv))


def from_registry(example) -> bool:
    return model_deployment_in(example)["spec"]["model"]["uri"].startswith("models:/")


# An example whose model comes from an MLflow registry needs one, and an
# operator configured with its address: test_registry_example_... below.
REGISTRY_EXAMPLES = [p for p in EXAMPLES if from_registry(p)]
STORE_EXAMPLES = [p for p in EXAMPLES if not from_registry(p)]


@pytest.mark.e2e
@pytest.mark.parametrize("example", REGISTRY_EXAMPLES, ids=[p.stem for p in REGISTRY_EXAMPLES])
def test_registry_example_resolves_through_a_real_mlflow_and_becomes_ready(cluster, own_namespace, tmp_path,
                                                                          example):
    from support.mlflow_registry import running_mlflow
    from support.process import OperatorProcess

    doc = model_deployment_in(example)
    name, uri = doc["metadata"]["name"], doc["spec"]["model"]["uri"]
    registered, _, alias = uri.removeprefix("models:/").partition("@")
    with running_mlflow(tmp_path / "mlflow") as mlflow, OperatorProcess(
            cluster, own_namespace, tmp_path / "operator.log", env={"MODELDEPLOY_MLFLOW_TRACKING_URI": mlflow.url}):
        version, run_id = mlflow.register(registered, f"s3://models/{registered}/1")
        if alias:
            mlflow.set_alias(registered, alias, version)
        cluster.kubectl("apply", "-n", own_namespace, "-f", str(example))
        cluster.kubectl("-n", own_namespace, "wait", "--for=condition=Ready", f"md/{name}", "--timeout=90s",
                        timeout=100)
        md = cluster.get_json("-n", own_namespace, "md", name)
        assert (md["status"]["model"]["version"], md["status"]["model"]["runId"]) == (version, run_id)
        pod = cluster.get_json("-n", own_namespace, "pods", "-l", f"modeldeploy.io/name={name}")["items"][0]
        assert pod["spec"]["initContainers"][0]["args"][0] == f"s3://models/{registered}/1"


@pytest.mark.e2e
@pytest.mark.parametrize("example", STORE_EXAMPLES, ids=[p.stem for p in STORE_EXAMPLES])
def test_example_applies_and_becomes_ready(cluster, namespace, operator, example):
    doc = model_deployment_in(example)
    name = doc["metadata"]["name"]
    if doc["spec"]["model"]["uri"].startswith("pvc://"):
        make_model_store(cluster, namespace)
    if doc["spec"]["model"].get("cache"):
        make_cache_volume(cluster, namespace, doc["spec"]["model"]["cache"]["claimName"])
    cluster.kubectl("apply", "-n", namespace, "-f", str(example))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", f"md/{name}", "--timeout=90s", timeout=100)

    md = cluster.get_json("-n", namespace, "md", name)
    assert md["status"]["stable"]["modelVersion"] == doc["spec"]["model"]["version"]
    table = cluster.kubectl("-n", namespace, "get", "md", name).stdout
    assert "Ready" in table and doc["spec"]["model"]["version"] in table  # the printer columns

    pod = cluster.get_json("-n", namespace, "pods", "-l", f"modeldeploy.io/name={name}")["items"][0]
    server = pod["spec"]["containers"][-1]
    limits = doc["spec"].get("resources", {}).get("limits", {})
    if "nvidia.com/gpu" in limits:
        assert server["resources"]["limits"]["nvidia.com/gpu"] == limits["nvidia.com/gpu"]
    if doc["spec"].get("autoscaling", {}).get("engine") == "KEDA":
        # A ScaledObject in the HPA's place, accepted by KEDA's CRD.
        scaled = cluster.get_json("-n", namespace, "scaledobject", name)
        assert scaled["spec"]["minReplicaCount"] == doc["spec"]["autoscaling"]["minReplicas"]
        assert scaled["spec"]["triggers"] == doc["spec"]["autoscaling"]["keda"]["triggers"]
    elif "autoscaling" in doc["spec"]:
        hpa = cluster.get_json("-n", namespace, "hpa", name)
        assert hpa["spec"]["minReplicas"] == doc["spec"]["autoscaling"]["minReplicas"]
        if "metrics" in doc["spec"]["autoscaling"]:
            assert hpa["spec"]["metrics"] == doc["spec"]["autoscaling"]["metrics"]
    if doc["spec"]["model"]["uri"].startswith("pvc://"):
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        claims = [v["persistentVolumeClaim"] for v in volumes.values() if "persistentVolumeClaim" in v]
        assert claims == [{"claimName": "model-store", "readOnly": True}]
    else:
        assert pod["spec"]["initContainers"], "the storage initializer downloads the model"
    if doc["spec"].get("serviceAccountName"):
        # Workload identity: the pod runs as the ServiceAccount, whose
        # projected token every container mounts, the storage initializer
        # that downloads the model as much as the server (a cloud's identity
        # webhook hands its credentials to the same containers).
        assert pod["spec"]["serviceAccountName"] == doc["spec"]["serviceAccountName"]
        assert pod["spec"].get("automountServiceAccountToken") is not False
        for container in (*pod["spec"]["initContainers"], *pod["spec"]["containers"]):
            mounts = {m["mountPath"] for m in container.get("volumeMounts") or ()}
            assert "/var/run/secrets/kubernetes.io/serviceaccount" in mounts, container["name"]
    for key, value in (doc["spec"].get("podMetadata") or {}).get("labels", {}).items():
        assert pod["metadata"]["labels"][key] == value
    if doc["spec"]["model"].get("credentials"):
        secret = doc["spec"]["model"]["credentials"]["secretName"]
        [initializer] = pod["spec"]["initContainers"]
        assert initializer["envFrom"] == [{"secretRef": {"name": secret}}]
        assert all("envFrom" not in c for c in pod["spec"]["containers"]), "the server never sees the keys"
    if doc["spec"]["model"].get("cache"):
        [initializer] = pod["spec"]["initContainers"]
        assert {"name": "MODELDEPLOY_CACHE_DIR", "value": "/mnt/model-cache"} in initializer["env"]
        claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"] if "persistentVolumeClaim" in v]
        assert claims == [doc["spec"]["model"]["cache"]["claimName"]]
    for field in ("priorityClassName", "runtimeClassName", "affinity", "imagePullSecrets"):
        if field in doc["spec"]:  # scheduling controls reach the pod as a pod spec has them
            assert pod["spec"][field] == doc["spec"][field], field
    if doc["spec"].get("podTemplatePatch"):
        volumes = {v["name"] for v in pod["spec"]["volumes"]}
        assert {v["name"] for v in doc["spec"]["podTemplatePatch"]["spec"].get("volumes", ())} <= volumes
    if "runtime" in doc["spec"] and "image" in doc["spec"]["runtime"]:
        assert server["image"] == doc["spec"]["runtime"]["image"]
