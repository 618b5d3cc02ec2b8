"""Idempotence as the API server sees it: once converged, a full resync of
every ModelDeployment makes no write request at all (counted from the API
server's audit log by user agent, not from the operator's own account)."""
from __future__ import annotations

from support.canary import GATEWAY
from support.models import apply_md, get_md, is_true, model_deployment, status_view, wait_ready
from support.operator import AuditLog, describe_writes
from support.waiting import wait_until


def test_steady_state_resync_writes_nothing(cluster, namespace, operator):
    audit = AuditLog(cluster)
    start = audit.mark()
    apply_md(cluster, namespace, model_deployment("quiet-a", replicas=2))
    apply_md(cluster, namespace, model_deployment(
        "quiet-b", replicas=None, autoscaling={"minReplicas": 2, "maxReplicas": 4}))
    # Issue 14: an HPA on a Pods metric, and a KEDA ScaledObject (its CRD's defaults).
    apply_md(cluster, namespace, model_deployment("quiet-metrics", replicas=None, autoscaling={
        "maxReplicas": 4, "metrics": [{"type": "Pods", "pods": {
            "metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "20"}}}]}))
    apply_md(cluster, namespace, model_deployment("quiet-keda", replicas=None, autoscaling={
        "minReplicas": 0, "maxReplicas": 4, "engine": "KEDA", "keda": {"triggers": [
            {"type": "prometheus", "metadata": {"serverAddress": "http://p:9090", "query": "q", "threshold": "5"}}]}}))
    # Routes whose lists the API server fills with defaults (issue 12's
    # header rule, backendRefs' group and kind, a rule's path match).
    apply_md(cluster, namespace, model_deployment("quiet-routed", replicas=1, traffic={**GATEWAY, "canaryHeaders": [
        {"name": "x-model-canary", "value": "true"}, {"name": "x-team", "value": "ml-.*", "type": "RegularExpression"}]}))
    apply_md(cluster, namespace, model_deployment("quiet-mesh", replicas=1, traffic={
        "provider": "istio", "istio": {"hosts": ["fraud.example.com"]},
        "canaryHeaders": [{"name": "x-model-canary", "value": "true"}]}))
    # A broken one is a steady state too: once Stalled, its restarting pods
    # must not make the status churn.
    apply_md(cluster, namespace, model_deployment("quiet-broken", replicas=1, behavior="crashloop",
                                                  rollout={"progressDeadlineSeconds": 10}))
    wait_ready(cluster, namespace, "quiet-a")
    wait_ready(cluster, namespace, "quiet-b")
    wait_ready(cluster, namespace, "quiet-routed")
    wait_ready(cluster, namespace, "quiet-mesh")
    wait_ready(cluster, namespace, "quiet-metrics")
    wait_ready(cluster, namespace, "quiet-keda")
    wait_until(lambda: is_true(get_md(cluster, namespace, "quiet-broken"), "Stalled"), timeout=60,
               what="the crash-looping one to stall",
               describe=lambda: status_view(get_md(cluster, namespace, "quiet-broken")))
    # The count below would be vacuous if the audit filter matched nothing:
    # converging must have shown up as the operator's writes.
    converging = [e for e in audit.writes_since(start) if namespace in e["requestURI"]]
    assert any("/deployments/quiet-a-stable" in e["requestURI"] for e in converging), describe_writes(converging)

    operator.wait_for_resync()  # let any write still in flight land
    mark = audit.mark()
    operator.wait_for_resync()
    operator.wait_for_resync()
    # This namespace's steady state. (Namespaces that earlier tests left
    # terminating are not steady: their deletion is still in progress.)
    writes = [e for e in audit.writes_since(mark) if f"/namespaces/{namespace}/" in e["requestURI"]]
    assert writes == [], describe_writes(writes)
