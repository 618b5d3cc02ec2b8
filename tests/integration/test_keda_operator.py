"""A ModelDeployment scaled to zero and back by KEDA's own operator (v2.20.2,
built from its Go module by hack/build-keda.sh) on the local control plane,
and a new version applied at zero: it waits, its canary starts on the scale
up, KEDA cannot take the model to zero under the canary, and after the
promotion it scales it to zero again.

The trigger is KEDA's kubernetes-workload scaler, active while a pod with
the label `wake=<name>` exists: a stand-in for "a request arrived" that
needs no Prometheus. (KEDA's scaling from 1 to N goes through its metrics
API server, not run here; 0 <-> 1 is the operator's own.)"""
from __future__ import annotations

import json

import pytest

from support.canary import model_v
from support.keda import keda_operator, tail
from support.models import apply_md, get_md, model_deployment, status_view
from support.real_node import progress_display
from support.waiting import wait_until

NAME = "sleepy"


def trigger(name: str) -> dict:
    return {"type": "kubernetes-workload", "metadata": {"podSelector": f"wake={name}", "value": "1",
                                                         "activationValue": "0"}}


def wake_pod(name: str) -> dict:
    """A pod that only exists: the kubernetes-workload trigger counts it."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"wake-{name}", "labels": {"wake": name}},
            "spec": {"containers": [{"name": "wake", "image": "registry.example.com/wake:1",
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]},
                                                         "runAsNonRoot": True, "runAsUser": 65532,
                                                         "seccompProfile": {"type": "RuntimeDefault"}}}]}}


@pytest.fixture
def keda(cluster, namespace, tmp_path, request):
    with keda_operator(cluster, namespace, tmp_path / "keda", progress_display(request)) as log:
        yield log


def stable_replicas(cluster, namespace) -> int | None:
    found = cluster.kubectl("-n", namespace, "get", "deployment", f"{NAME}-stable", "-o", "json", check=False)
    return json.loads(found.stdout)["spec"].get("replicas") if found.returncode == 0 else None


def scaled_object(cluster, namespace) -> dict:
    return cluster.get_json("-n", namespace, "scaledobject", NAME)


def test_keda_scales_the_model_to_zero_and_a_new_version_waits_for_its_scale_up(cluster, namespace, operator, keda):
    def seen():
        md = get_md(cluster, namespace, NAME)
        return {"model": status_view(md), "stable replicas": stable_replicas(cluster, namespace),
                "keda": tail(keda, 15)}

    doc = model_deployment(NAME, replicas=None, autoscaling={
        "engine": "KEDA", "minReplicas": 0, "maxReplicas": 2,
        "keda": {"pollingInterval": 1, "cooldownPeriod": 1, "triggers": [trigger(NAME)]}})
    apply_md(cluster, namespace, doc)
    # No pod wakes it: after the cooldown KEDA scales the stable Deployment to 0.
    wait_until(lambda: stable_replicas(cluster, namespace) == 0, timeout=90, what="KEDA scaling the model to 0",
               describe=seen)
    wait_until(lambda: (get_md(cluster, namespace, NAME).get("status") or {}).get("phase") == "Ready", timeout=60,
               what="Ready at zero (nothing asked of it)", describe=seen)

    apply_md(cluster, namespace, model_v(doc, "v2"))

    def waiting():
        md = get_md(cluster, namespace, NAME)
        ready = next((c for c in (md.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})
        return ready.get("reason") == "WaitingForScaleUp" and md

    md = wait_until(waiting, timeout=60, what="v2 waiting for the scale-up", describe=seen)
    assert md["status"]["stable"]["modelVersion"] == "v1" and stable_replicas(cluster, namespace) == 0

    # "A request": KEDA scales stable (v1) up from 0; v2's canary starts,
    # and the ScaledObject's minimum is held at 1 while it runs.
    cluster.apply(namespace, wake_pod(NAME))
    wait_until(lambda: ((get_md(cluster, namespace, NAME).get("status") or {}).get("rollout") or {}).get("stage")
               == "Canary" and scaled_object(cluster, namespace)["spec"]["minReplicaCount"] == 1,
               timeout=90, what="the canary started, minReplicaCount 1", describe=seen)
    # Idle again: KEDA may not go below the canary's floor (its HPA says 1).
    cluster.kubectl("-n", namespace, "delete", "pod", f"wake-{NAME}", "--wait=false")
    wait_until(lambda: cluster.get_json("-n", namespace, "hpa", f"keda-hpa-{NAME}")["spec"]["minReplicas"] == 1,
               timeout=60, what="KEDA's own HPA holding 1 replica under the canary", describe=seen)
    assert stable_replicas(cluster, namespace) >= 1

    cluster.kubectl("-n", namespace, "annotate", "md", NAME, "modeldeploy.io/promote=true")
    wait_until(lambda: (get_md(cluster, namespace, NAME).get("status") or {}).get("stable", {}).get("modelVersion")
               == "v2" and scaled_object(cluster, namespace)["spec"]["minReplicaCount"] == 0,
               timeout=120, what="v2 promoted, minReplicaCount back to 0", describe=seen)
    wait_until(lambda: stable_replicas(cluster, namespace) == 0, timeout=90,
               what="KEDA scaling the promoted model to 0 again", describe=seen)
