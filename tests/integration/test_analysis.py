"""Metric analysis against a real Prometheus scraping an exporter whose
per-revision request and error rates the test controls."""
from __future__ import annotations

from support.models import apply_md, condition, get_md, is_true, model_deployment, status_view, wait_ready
from support.waiting import holds_for, wait_until

from modeldeploy.api import parse_spec
from modeldeploy.builders import compute_revision
from modeldeploy.runtimes import load_runtime_table

WINDOW = "10s"
ERROR_RATE = ('sum(rate(requests_total{revision="{{canary.revision}}",code="500"}[%s])) / '
              'sum(rate(requests_total{revision="{{canary.revision}}"}[%s]))' % (WINDOW, WINDOW))
SAMPLES = 'sum(increase(requests_total{revision="{{canary.revision}}"}[%s]))' % WINDOW


def analysed(name: str, prometheus, steps: list[dict], failure_limit: int = 1) -> dict:
    return model_deployment(name, replicas=2, rollout={
        "steps": steps,
        "analysis": {"interval": "2s", "failureLimit": failure_limit, "minSamples": 20,
                     "samplesQuery": SAMPLES, "onInconclusive": "Pause",
                     "prometheus": {"address": prometheus.url},
                     "metrics": [{"name": "error-rate", "query": ERROR_RATE, "max": 0.05}]}})


def as_version(doc: dict, version: str) -> dict:
    new = {**doc, "spec": {**doc["spec"], "model": {**doc["spec"]["model"], "version": version,
                                                     "uri": f"s3://models/x/{version}"}}}
    return new


def revision_of(doc: dict) -> str:
    """The revision the operator will compute: the exporter labels the
    canary's requests with it before the canary even exists."""
    table = load_runtime_table()
    return compute_revision(parse_spec(doc["spec"], known_formats=table.known_formats), table)


def decisions(md: dict) -> list[dict]:
    return (md.get("status", {}).get("rollout") or {}).get("decisions") or []


def test_healthy_canary_passes_analysis_and_is_promoted(cluster, namespace, operator, prometheus):
    doc = analysed("healthy", prometheus, [{"setWeight": 50}, {"pause": {"duration": "8s"}}])
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "healthy")
    v2 = as_version(doc, "v2")
    prometheus.exporter.set(revision_of(v2), ok_per_second=30)
    apply_md(cluster, namespace, v2)
    done = wait_until(lambda: is_true(m := get_md(cluster, namespace, "healthy"), "Ready")
                      and m["status"]["stable"]["modelVersion"] == "v2" and m,
                      timeout=90, what="promotion after passing analysis",
                      describe=lambda: status_view(get_md(cluster, namespace, "healthy")))
    assert done["status"]["history"][-1]["result"] == "Promoted"


def test_high_error_rate_rolls_back_after_the_failure_limit(cluster, namespace, operator, prometheus):
    doc = analysed("erroring", prometheus, [{"setWeight": 50}, {"pause": {}}], failure_limit=1)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "erroring")
    v2 = as_version(doc, "v2")
    prometheus.exporter.set(revision_of(v2), ok_per_second=20, errors_per_second=10)
    apply_md(cluster, namespace, v2)
    md = wait_until(lambda: (m := get_md(cluster, namespace, "erroring"))["status"].get("phase") == "RolledBack" and m,
                    timeout=90, what="rollback", describe=lambda: status_view(get_md(cluster, namespace, "erroring")))
    log = decisions(md)
    fails = [d for d in log if d["verdict"] == "Fail"]
    assert len(fails) == 2, log  # failureLimit 1: the second failed check rolls back
    assert all(d["metric"] == "error-rate" and d["value"] > 0.05 and d["samples"] >= 20 for d in fails), fails
    assert fails[-1]["action"] == "Rollback"
    assert "error-rate" in condition(md, "Stalled")["message"]
    assert md["status"]["stable"]["modelVersion"] == "v1"


def test_too_few_samples_is_inconclusive_and_pauses(cluster, namespace, operator, prometheus):
    doc = analysed("quiet", prometheus, [{"setWeight": 50}, {"pause": {"duration": "2s"}}])
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "quiet")
    v2 = as_version(doc, "v2")
    prometheus.exporter.set(revision_of(v2), ok_per_second=0.5)  # about 5 requests in the window, < 20
    apply_md(cluster, namespace, v2)
    md = wait_until(lambda: (m := get_md(cluster, namespace, "quiet"))["status"].get("phase") == "Paused" and m,
                    timeout=60, what="an inconclusive pause",
                    describe=lambda: status_view(get_md(cluster, namespace, "quiet")))
    inconclusive = [d for d in decisions(md) if d["verdict"] == "Inconclusive"]
    assert inconclusive and all((d.get("samples") or 0) < 20 for d in inconclusive), decisions(md)
    assert md["status"]["rollout"]["pausedReason"]
    # Never a pass on too little evidence: the 2s pause is long over, still no promotion.
    holds_for(lambda: (s := get_md(cluster, namespace, "quiet")["status"])["stable"]["modelVersion"] == "v1"
              and s["phase"] == "Paused", seconds=6, what="staying paused on v1")
