"""What canaries waiting for approval cost the API server (issue 15): a paused
canary is planned again at every full resync and at every pod change, from
the watch cache (pods are watched, never listed per pass), so while N of them
wait the operator sends no request at all: no read, no write."""
from __future__ import annotations

import json
import sys
import time
import urllib.request

from support.canary import model_v, wait_phase
from support.models import apply_md, model_deployment, wait_ready
from support.process import MeteredOperator
from support.waiting import wait_until

MODELS = 10
STEPS = [{"setWeight": 50}, {"pause": {}}]  # waits for approval


def total(samples: dict[str, float], metric: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(metric + "{") or k == metric)


def test_paused_canaries_send_the_api_server_nothing_while_they_wait(cluster, own_namespace, tmp_path):
    ns = own_namespace
    op = MeteredOperator(cluster, ns, tmp_path / "operator.log").start()
    try:
        names = [f"paused-{i}" for i in range(MODELS)]
        docs = {name: model_deployment(name, replicas=2, rollout={"steps": STEPS}) for name in names}
        for name, doc in docs.items():
            apply_md(cluster, ns, doc)
        for name in names:
            wait_ready(cluster, ns, name, timeout=120)
        for name, doc in docs.items():
            apply_md(cluster, ns, model_v(doc, "v2"))
        for name in names:
            wait_phase(cluster, ns, name, "Paused", timeout=120)

        def progress() -> dict:
            with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=2) as resp:
                return json.loads(resp.read())

        # Settled: the canaries' pods ready, the last status written. Then a
        # window of three full resyncs (each plans every model again).
        wait_until(lambda: progress().get("idle"), timeout=30, what="the operator idle", describe=progress)
        before, started, resyncs = op.samples(), time.monotonic(), progress()["resyncs"]
        wait_until(lambda: progress()["resyncs"] >= resyncs + 3, timeout=90, what="three full resyncs",
                   describe=progress)
        after, minutes = op.samples(), (time.monotonic() - started) / 60

        passes = total(after, "modeldeploy_reconciles_total") - total(before, "modeldeploy_reconciles_total")
        reads = {k: v - before.get(k, 0) for k, v in after.items()
                 if k.startswith("modeldeploy_api_reads_total{") and v != before.get(k, 0)}
        writes = total(after, "modeldeploy_api_writes_total") - total(before, "modeldeploy_api_writes_total")
        print(f"\n{MODELS} paused canaries over {minutes:.2f} min: {passes:.0f} reconcile passes, "
              f"{sum(reads.values()) / MODELS / minutes:.2f} API reads and {writes / MODELS / minutes:.2f} "
              "writes per model per minute", file=sys.stderr)
        assert passes >= 3 * MODELS, (passes, "each resync plans every paused canary again")
        assert reads == {}, reads
        assert writes == 0, op.log_text()[-3000:]
    finally:
        op.kill()
