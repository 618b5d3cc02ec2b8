"""A CI pipeline's `kubectl wait --for=condition=Ready md/NAME` returns when
a canary rollout has finished -- after promotion, never before -- whether it
was started right after `kubectl apply` (racing the operator) or in the
middle of the canary."""
from __future__ import annotations

import json
import subprocess

import pytest

from support.canary import GATEWAY, model_v, route_weights
from support.models import apply_md, get_md, model_deployment, status_view, wait_ready
from support.waiting import wait_until


def start_wait(cluster, namespace: str, name: str) -> subprocess.Popen:
    # -o json prints the object kubectl saw when the condition was met: the
    # state at the moment it returned, not a later read.
    return subprocess.Popen(
        [str(cluster.bin_dir / "kubectl"), "-n", namespace, "wait", "--for=condition=Ready", f"md/{name}",
         "--timeout=120s", "-o", "json"],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.e2e
def test_kubectl_wait_ready_returns_after_promotion(cluster, namespace, operator):
    name = "waited"
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout={
        "steps": [{"setWeight": 25}, {"pause": {"duration": "2s"}}, {"setWeight": 50}, {"pause": {"duration": "2s"}}]})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, name)

    apply_md(cluster, namespace, model_v(doc, "v2"))
    right_after_apply = start_wait(cluster, namespace, name)
    try:
        wait_until(lambda: route_weights(cluster, namespace, name) == (50, 50), timeout=60,
                   what="the canary at 50%", describe=lambda: status_view(get_md(cluster, namespace, name)))
        assert right_after_apply.poll() is None, "kubectl wait returned while the canary still had half the traffic"
        mid_canary = start_wait(cluster, namespace, name)
        try:
            outcomes = [(p.communicate(timeout=130), p.returncode) for p in (right_after_apply, mid_canary)]
        finally:
            mid_canary.kill()
    finally:
        right_after_apply.kill()

    for (out, err), code in outcomes:
        assert code == 0, err
        seen = json.loads(out)
        st = seen["status"]
        assert st["observedGeneration"] == seen["metadata"]["generation"]
        assert st["stable"]["modelVersion"] == "v2", status_view(seen)
        assert "canary" not in st and st["traffic"]["canary"] == 0, status_view(seen)
        assert st["history"][-1]["modelVersion"] == "v2" and st["history"][-1]["result"] == "Promoted"
