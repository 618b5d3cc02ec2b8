"""Two operator processes at once with kopf peering (crds/kopf-peering.yaml,
`modeldeploy run --peering NAME --priority N`): only the higher-priority one
acts; SIGKILL it and the other takes over within the peering lifetime; bring
it back and the standby steps aside again.

Who acted is counted per process from each one's own /metrics
(modeldeploy_api_writes_total: every apply, patch, delete and Event it made;
kopf's own keep-alives to the peering object are not in it).

Handover time: a dead peer is presumed gone `lifetime` seconds after its last
keep-alive, and keep-alives go out every lifetime - 5..10 s (at least 1 s), so
a standby resumes between about lifetime - 5 s and lifetime after the kill,
then re-lists and reconciles. The operator's lifetime is
MODELDEPLOY_PEERING_LIFETIME (default 60 s: handover within 5-60 s); this
test runs with 10 s."""
from __future__ import annotations

import time

from support.canary import model_v
from support.chaos import brief
from support.cluster import REPO
from support.models import apply_md, edited, get_md, is_true, model_deployment, wait_ready
from support.process import MeteredOperator
from support.waiting import wait_until

PEERING = "modeldeploy"
LIFETIME = 10
STEPS = [{"setWeight": 50}, {"pause": {"duration": "2s"}}]
SLOW_STEPS = [{"setWeight": 50}, {"pause": {"duration": "6s"}}]


def _peered(cluster, ns, tmp_path, name, priority):
    return MeteredOperator(cluster, ns, tmp_path / f"{name}.log",
                           extra_args=("--peering", PEERING, "--priority", str(priority)),
                           env={"MODELDEPLOY_PEERING_LIFETIME": str(LIFETIME)})


def _promoted(cluster, ns, name, version):
    return wait_until(lambda: (m := get_md(cluster, ns, name)) and is_true(m, "Ready")
                      and m["status"]["stable"]["modelVersion"] == version and not m["status"].get("canary") and m,
                      timeout=60, what=f"{version} promoted", describe=lambda: brief(get_md(cluster, ns, name)))


def _paused(op: MeteredOperator) -> bool:
    # kopf logs a pause only when an active operator stops; a replica that
    # starts paused (it always does with --peering) logs only its resuming.
    return "Pausing operations in favour" in op.log_text()


def _resumed(op: MeteredOperator) -> bool:
    return "Resuming operations after the pause" in op.log_text()


def _peers(cluster, ns) -> dict:
    return cluster.get_json("-n", ns, "kopfpeering", PEERING).get("status") or {}


def test_only_the_higher_priority_operator_acts_and_hands_over(cluster, own_namespace, tmp_path):
    ns = own_namespace
    cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "kopf-peering.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/kopfpeerings.kopf.dev",
                    "crd/clusterkopfpeerings.kopf.dev")
    cluster.apply(ns, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}})
    doc = model_deployment("peered", replicas=1, rollout={"steps": STEPS})
    high = _peered(cluster, ns, tmp_path, "high", 100).start()
    low = _peered(cluster, ns, tmp_path, "low", 50).start()
    try:
        wait_until(lambda: _resumed(high) and len(_peers(cluster, ns)) == 2, timeout=30,
                   what="the high-priority operator active, both peers registered",
                   describe=lambda: (_peers(cluster, ns), high.log_text()[-1000:]))

        # 1. Both run: a deployment and a canary rollout, all by the high one.
        apply_md(cluster, ns, doc)
        wait_ready(cluster, ns, "peered")
        apply_md(cluster, ns, model_v(doc, "v2"))
        _promoted(cluster, ns, "peered", "v2")
        assert high.writes() > 0 and low.writes() == 0, (high.writes(), low.writes())

        # 2. SIGKILL the active one; a change made at that moment is carried
        # out by the standby once the dead peer's keep-alive expires.
        high.kill()
        killed = time.monotonic()
        apply_md(cluster, ns, edited(model_v(doc, "v2"), replicas=2))
        wait_until(lambda: cluster.apps.read_namespaced_deployment("peered-stable", ns).spec.replicas == 2,
                   timeout=LIFETIME + 30, what="the standby to take over",
                   describe=lambda: low.log_text()[-1500:])
        handover = time.monotonic() - killed
        print(f"\nhandover after SIGKILL of the active operator: {handover:.1f}s (peering lifetime {LIFETIME}s)")
        assert handover <= LIFETIME + 5, handover
        wait_ready(cluster, ns, "peered")
        assert low.writes() > 0 and _resumed(low)

        # 3. The high-priority one comes back in the middle of a rollout the
        # standby is driving: the standby steps aside at once and writes
        # nothing more (no pause timer or resync of its own acting on what it
        # saw before), and the high one finishes the rollout.
        apply_md(cluster, ns, edited(model_v(doc, "v3", rollout={"steps": SLOW_STEPS}), replicas=2))
        wait_until(lambda: (get_md(cluster, ns, "peered")["status"].get("rollout") or {}).get("weight") == 50,
                   timeout=30, what="the standby's canary at 50%", describe=lambda: brief(get_md(cluster, ns, "peered")))
        high.start()
        wait_until(lambda: _paused(low), timeout=30, what="the low-priority operator to pause again",
                   describe=lambda: low.log_text()[-1500:])
        low_writes, high_writes = low.writes(), high.writes()
        _promoted(cluster, ns, "peered", "v3")
        assert high.writes() > high_writes
        assert low.writes() == low_writes, "the paused standby wrote while the high-priority operator was active"
        done = get_md(cluster, ns, "peered")
        assert [(h["modelVersion"], h["result"]) for h in done["status"]["history"]] == [
            ("v1", "Deployed"), ("v2", "Promoted"), ("v3", "Promoted")], brief(done)
    finally:
        high.kill()
        low.kill()
