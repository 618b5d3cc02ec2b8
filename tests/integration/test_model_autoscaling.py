"""Issue 14, item 3, on the real control plane: HPAs on model metrics and
KEDA ScaledObjects as the API server takes them (KEDA's own CRD, installed
by hack/cluster.sh from its Go module), the switch between the two engines,
and a new revision while the model is scaled to zero.

KEDA's operator does not run here (see the README): its part, scaling the
stable Deployment to 0 and back, is played by `kubectl scale`, as KEDA does
it, through the Deployment's scale subresource."""
from __future__ import annotations

import json

from support.models import apply_md, edited, get_md, model_deployment, status_view
from support.waiting import wait_until

RPS = {"type": "Pods", "pods": {"metric": {"name": "vllm_requests_per_second"},
                                "target": {"type": "AverageValue", "averageValue": "20"}}}
QUEUE = {"type": "External", "external": {"metric": {"name": "queue_depth",
                                                     "selector": {"matchLabels": {"queue": "llm"}}},
                                          "target": {"type": "Value", "value": "100"}}}
PROMETHEUS = {"type": "prometheus", "metadata": {"serverAddress": "http://prometheus.monitoring:9090",
                                                 "query": "sum(rate(requests_total[1m]))", "threshold": "5"}}
KEDA = {"minReplicas": 0, "maxReplicas": 4, "engine": "KEDA", "keda": {"triggers": [PROMETHEUS], "cooldownPeriod": 60}}


def child(cluster, namespace, kind, name):
    found = cluster.kubectl("-n", namespace, "get", kind, name, "-o", "json", check=False)
    return json.loads(found.stdout) if found.returncode == 0 else None


def test_the_api_server_refuses_autoscaling_settings_that_cannot_work(cluster, namespace, operator):
    for autoscaling, message in [
        ({"minReplicas": 0, "maxReplicas": 4}, "minReplicas 0 (scale to zero) needs autoscaling.engine KEDA"),
        ({"maxReplicas": 4, "engine": "KEDA"}, "autoscaling.engine KEDA needs autoscaling.keda.triggers"),
        ({"maxReplicas": 4, "keda": {"triggers": [PROMETHEUS]}}, "autoscaling.keda is read only with"),
        ({**KEDA, "metrics": [RPS]}, "with engine KEDA give them as autoscaling.keda.triggers"),
        ({"maxReplicas": 4, "metrics": [{"type": "Pods", "external": QUEUE["external"]}]},
         "a metric sets exactly one of resource, pods"),
        ({"maxReplicas": 4, "metrics": [{"type": "Pods", "pods": {"metric": {"name": "rps"}}}]},
         "metrics[0].pods.target: Required value"),
        ({"maxReplicas": 4, "metrics": [{"type": "Queue", "pods": RPS["pods"]}]}, "Unsupported value: \"Queue\""),
    ]:
        doc = model_deployment("scaled-bad", replicas=None, autoscaling=autoscaling)
        refused = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc), check=False)
        assert refused.returncode != 0 and message in refused.stderr, (autoscaling, refused.stderr)
    doc = model_deployment("scaled-bad", replicas=None, autoscaling=KEDA, rollout={"capacity": {"mode": "Replace"}})
    refused = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc), check=False)
    assert refused.returncode != 0 and "needs rollout.capacity.mode Surge" in refused.stderr, refused.stderr
    # Custom metrics need no CPU request (the default CPU target does).
    doc = model_deployment("scaled-ok", replicas=None, autoscaling={"maxReplicas": 4, "metrics": [RPS]})
    del doc["spec"]["resources"]
    accepted = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc), check=False)
    assert accepted.returncode == 0, accepted.stderr


def test_an_hpa_on_pods_and_external_metrics_is_taken_as_written(cluster, namespace, operator):
    apply_md(cluster, namespace, model_deployment("rps", replicas=None,
                                                  autoscaling={"minReplicas": 1, "maxReplicas": 6,
                                                               "metrics": [RPS, QUEUE]}))
    hpa = wait_until(lambda: child(cluster, namespace, "hpa", "rps"), timeout=60, what="the HPA",
                     describe=lambda: status_view(get_md(cluster, namespace, "rps")))
    assert hpa["spec"]["metrics"] == [RPS, QUEUE]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rps-stable"


def test_switching_engine_hpa_to_keda_and_back_prunes_the_other(cluster, namespace, operator):
    doc = model_deployment("switch", replicas=None, autoscaling={"minReplicas": 1, "maxReplicas": 4,
                                                                 "metrics": [RPS]})
    apply_md(cluster, namespace, doc)
    wait_until(lambda: child(cluster, namespace, "hpa", "switch"), timeout=60, what="the HPA")

    apply_md(cluster, namespace, edited(doc, autoscaling=KEDA))
    scaled = wait_until(
        lambda: (not child(cluster, namespace, "hpa", "switch")) and child(cluster, namespace, "scaledobject", "switch"),
        timeout=60, what="the ScaledObject in the HPA's place",
        describe=lambda: status_view(get_md(cluster, namespace, "switch")))
    # Accepted by KEDA's own CRD (keda.sh/v1alpha1), as the operator sent it.
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "switch-stable"}
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 4)
    assert scaled["spec"]["triggers"] == [PROMETHEUS] and scaled["spec"]["cooldownPeriod"] == 60
    assert scaled["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"

    apply_md(cluster, namespace, doc)
    wait_until(
        lambda: (not child(cluster, namespace, "scaledobject", "switch")) and child(cluster, namespace, "hpa", "switch"),
        timeout=60, what="the HPA back, the ScaledObject pruned")


def test_a_new_revision_at_zero_waits_for_the_scale_up_then_its_canary_holds_the_model_off_zero(
        cluster, namespace, operator):
    doc = model_deployment("idle", replicas=None, autoscaling=KEDA)
    apply_md(cluster, namespace, doc)
    wait_until(lambda: (get_md(cluster, namespace, "idle").get("status") or {}).get("phase") == "Ready", timeout=60,
               what="Ready", describe=lambda: status_view(get_md(cluster, namespace, "idle")))
    # KEDA, after the cooldown without requests: the stable Deployment to 0.
    cluster.kubectl("-n", namespace, "scale", "deployment", "idle-stable", "--replicas=0")
    apply_md(cluster, namespace, edited(doc, model={**doc["spec"]["model"], "version": "v2",
                                                    "uri": "s3://models/idle/v2"}))

    def waiting():
        md = get_md(cluster, namespace, "idle")
        ready = next((c for c in (md.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})
        return ready.get("reason") == "WaitingForScaleUp" and md

    md = wait_until(waiting, timeout=60, what="the new revision waiting for the scale-up",
                    describe=lambda: status_view(get_md(cluster, namespace, "idle")))
    assert "v2" in md["status"]["message"] and "scaled to zero by its autoscaler (KEDA" in md["status"]["message"]
    assert md["status"]["stable"]["modelVersion"] == "v1"
    assert child(cluster, namespace, "deployment", "idle-canary") is None
    assert child(cluster, namespace, "scaledobject", "idle")["spec"]["minReplicaCount"] == 0

    # A request: KEDA scales stable (v1, tried) to 1; the canary starts and
    # the ScaledObject keeps the model off zero until it ends.
    cluster.kubectl("-n", namespace, "scale", "deployment", "idle-stable", "--replicas=1")

    def canary_running():
        md = get_md(cluster, namespace, "idle")
        scaled = child(cluster, namespace, "scaledobject", "idle")
        return ((md.get("status") or {}).get("rollout") or {}).get("stage") == "Canary" \
            and scaled["spec"]["minReplicaCount"] == 1 and md

    md = wait_until(canary_running, timeout=60, what="the canary started, minReplicaCount held at 1",
                    describe=lambda: status_view(get_md(cluster, namespace, "idle")))
    assert md["status"]["rollout"]["stableFloor"] == 1
