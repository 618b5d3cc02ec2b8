"""The operator's Prometheus metrics, scraped from `modeldeploy run
--metrics-port` while it takes a ModelDeployment through a canary."""
from __future__ import annotations

import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.canary import GATEWAY, model_v, wait_phase
from support.models import apply_md, get_md, is_true, model_deployment, wait_ready
from support.operator import free_port
from support.process import OperatorProcess
from support.waiting import wait_until


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, metric, **labels) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.e2e
def test_metrics_follow_a_rollout(cluster, tmp_path):
    ns = f"metrics-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", ns)
    port = free_port()
    op = OperatorProcess(cluster, ns, tmp_path / "operator.log", extra_args=("--metrics-port", str(port))).start()
    try:
        doc = model_deployment("observed", replicas=2, traffic=GATEWAY,
                               rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
        apply_md(cluster, ns, doc)
        wait_ready(cluster, ns, "observed")
        samples = scrape(port)
        assert value(samples, "modeldeploy_reconciles_total", result="ok") > 0
        assert value(samples, "modeldeploy_api_writes_total", verb="apply", kind="Deployment") >= 1
        assert value(samples, "modeldeploy_canary_weight", namespace=ns, name="observed") == 0
        assert ("modeldeploy_reconcile_duration_seconds_count", ()) in samples
        assert ("modeldeploy_event_loop_lag_max_seconds", ()) in samples

        apply_md(cluster, ns, model_v(doc, "v2"))
        wait_phase(cluster, ns, "observed", "Paused")
        wait_until(lambda: value(scrape(port), "modeldeploy_canary_weight", namespace=ns, name="observed") == 50,
                   timeout=15, what="the canary weight gauge at 50")
        assert value(scrape(port), "modeldeploy_rollout_step", namespace=ns, name="observed") >= 1

        cluster.kubectl("-n", ns, "annotate", "md", "observed", "modeldeploy.io/promote=true")
        wait_until(lambda: is_true(m := get_md(cluster, ns, "observed"), "Ready")
                   and m["status"]["stable"]["modelVersion"] == "v2", timeout=60, what="promotion")
        wait_until(lambda: value(scrape(port), "modeldeploy_rollouts_total", result="Promoted") == 1,
                   timeout=15, what="one Promoted rollout counted", describe=lambda: scrape(port))
        # The tests' operator resyncs every few seconds: the last one's length is served.
        wait_until(lambda: value(scrape(port), "modeldeploy_resync_duration_seconds") > 0, timeout=30,
                   what="the duration of a full resync", describe=lambda: scrape(port))
    finally:
        op.kill()
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)
