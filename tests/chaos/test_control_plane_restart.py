"""The API server and etcd restarted under a running operator, mid-rollout:
the operator reconnects by itself (same process, no restart) and finishes the
rollout as if nothing happened, and its watches work again afterwards.

This restarts processes of the control plane the tests run on: when others
share that control plane, run it on one of your own
(CLUSTER_DIR=/tmp/chaos-cluster hack/cluster.sh up)."""
from __future__ import annotations

import time

from support.canary import GATEWAY, model_v, route_weights
from support.chaos import brief, children, component_pid, expected_children, history, restart_components
from support.models import apply_md, edited, get_md, is_true, model_deployment, wait_ready
from support.process import MeteredOperator
from support.waiting import wait_until

STEPS = [{"setWeight": 25}, {"pause": {"duration": "6s"}}, {"setWeight": 50}, {"pause": {"duration": "3s"}}]


def test_api_server_and_etcd_restart_mid_rollout(cluster, own_namespace, tmp_path):
    ns = own_namespace
    doc = model_deployment("steady", replicas=2, traffic=GATEWAY, rollout={"steps": STEPS})
    witness = model_deployment("witness", replicas=1)
    op = MeteredOperator(cluster, ns, tmp_path / "operator.log").start()
    pid = op.proc.pid
    try:
        apply_md(cluster, ns, doc)
        apply_md(cluster, ns, witness)
        wait_ready(cluster, ns, "steady")
        wait_ready(cluster, ns, "witness")

        apply_md(cluster, ns, model_v(doc, "v2"))
        wait_until(lambda: (get_md(cluster, ns, "steady")["status"].get("rollout") or {}).get("weight") == 25,
                   timeout=60, what="the canary at 25%", describe=lambda: brief(get_md(cluster, ns, "steady")))
        before = {c: component_pid(cluster, c) for c in ("etcd", "kube-apiserver")}
        took = restart_components(cluster, "etcd", "kube-apiserver")
        assert all(component_pid(cluster, c) != p for c, p in before.items()), "not restarted"
        back = time.monotonic()
        print(f"\netcd + kube-apiserver restarted in {took:.1f}s (API unavailable meanwhile)")

        done = wait_until(lambda: (m := get_md(cluster, ns, "steady")) and is_true(m, "Ready")
                          and m["status"]["stable"]["modelVersion"] == "v2" and not m["status"].get("canary") and m,
                          timeout=90, what="the rollout to finish after the restart",
                          describe=lambda: brief(get_md(cluster, ns, "steady")))
        print(f"promoted {time.monotonic() - back:.1f}s after the API server was healthy again")

        # The watches are back: a change made now is acted on promptly.
        apply_md(cluster, ns, edited(witness, replicas=2))
        wait_until(lambda: cluster.apps.read_namespaced_deployment("witness-stable", ns).spec.replicas == 2,
                   timeout=30, what="the operator to act on a change after the restart")
        wait_ready(cluster, ns, "witness")
        assert op.alive and op.proc.pid == pid, "the operator had to be restarted"
    finally:
        op.kill()

    assert history(done) == [("v1", "Deployed"), ("v2", "Promoted")], brief(done)
    assert route_weights(cluster, ns, "steady") == (100, 0)
    want = expected_children("steady", pdb=True) | expected_children("witness", route=None, pdb=True)
    wait_until(lambda: children(cluster, ns) == want, timeout=30, what="exactly the expected children",
               describe=lambda: {"extra": sorted(children(cluster, ns) - want),
                                 "missing": sorted(want - children(cluster, ns))})
