"""Another field manager edits labels and annotations -- on the children and
on the ModelDeployment -- while canary rollouts run. The operator does not
fight it: once the edits stop, its writes are few, and zero once everything
has converged (a full resync without a single write); and no edit of a
field the operator does not own is lost to its server-side applies. A label
the operator does own, changed by the other manager, is put back once (drift
undone) without a loop."""
from __future__ import annotations

import json
import urllib.request

from support.canary import GATEWAY, model_v
from support.chaos import brief, history, list_mds
from support.models import is_true, model_deployment
from support.process import MeteredOperator
from support.waiting import wait_until

NAMES = ("alpha", "beta", "gamma")
STEPS = [{"setWeight": 25}, {"pause": {"duration": "3s"}}, {"setWeight": 50}, {"pause": {"duration": "3s"}}]
ROUNDS = 3
SOMEONE = "someone"


def _targets(name: str) -> list[str]:
    """What the other manager edits in each round (kubectl resource/name)."""
    return [f"modeldeployment/{name}", f"deployment/{name}-stable", f"deployment/{name}-canary",
            f"service/{name}", f"httproute/{name}"]


def _edit(cluster, ns, targets: list[str], round_: int) -> None:
    # check=False: a canary may be gone already; kubectl edits the others.
    cluster.kubectl("-n", ns, "label", *targets, f"team.example.com/owner=someone-{round_}", "--overwrite",
                    f"--field-manager={SOMEONE}", check=False)
    cluster.kubectl("-n", ns, "annotate", *targets, f"example.com/ticket=OPS-{round_}", "--overwrite",
                    f"--field-manager={SOMEONE}", check=False)


def _ssa_labels(cluster, ns, name: str) -> None:
    """The other manager's labels by server-side apply, on the role Service."""
    doc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": f"{name}-stable", "namespace": ns, "labels": {"cost-center": "ml-42"}}}
    cluster.kubectl("apply", "--server-side", f"--field-manager={SOMEONE}-ssa", "-f", "-", input=json.dumps(doc))


def _health(op: MeteredOperator) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{op.port}/healthz", timeout=2) as resp:
        return json.loads(resp.read())


def _done(md: dict) -> bool:
    st = md.get("status", {})
    return (is_true(md, "Ready") and (st.get("stable") or {}).get("modelVersion") == "v2" and not st.get("canary")
            and st.get("observedGeneration") == md["metadata"]["generation"])


def test_another_field_manager_edits_during_rollouts(cluster, own_namespace, tmp_path):
    ns = own_namespace
    docs = {n: model_deployment(n, replicas=2, traffic=GATEWAY, rollout={"steps": STEPS}) for n in NAMES}
    op = MeteredOperator(cluster, ns, tmp_path / "operator.log").start()
    try:
        cluster.apply(ns, list(docs.values()))
        wait_until(lambda: len(mds := list_mds(cluster, ns)) == len(NAMES) and all(
            is_true(m, "Ready") for m in mds.values()), timeout=60, what="the ModelDeployments Ready")

        cluster.apply(ns, [model_v(d, "v2") for d in docs.values()])
        wait_until(lambda: all(cluster.kubectl("-n", ns, "get", f"deployment/{n}-canary", check=False).returncode == 0
                               for n in NAMES), timeout=30, what="every canary Deployment")
        for round_ in range(ROUNDS):
            _edit(cluster, ns, [t for name in NAMES for t in _targets(name)], round_)
            for name in NAMES if round_ == 0 else ():
                    _ssa_labels(cluster, ns, name)
                    # A label the operator owns: taken back once, not fought over.
                    cluster.kubectl("-n", ns, "label", f"service/{name}", "app.kubernetes.io/component=hijacked",
                                    "--overwrite", f"--field-manager={SOMEONE}")
        edits_done = op.writes()
        in_flight = [n for n, m in list_mds(cluster, ns).items() if m.get("status", {}).get("canary")]
        assert in_flight, "the rollouts ended before the edits did: nothing ran concurrently"

        def all_done():
            mds = list_mds(cluster, ns)
            return all(_done(m) for m in mds.values()) and mds

        final = wait_until(all_done, timeout=60, what="every rollout promoted",
                           describe=lambda: [brief(m) for m in list_mds(cluster, ns).values()])
        # Quiet from here on: the writes that finished the rollouts are
        # bounded; then a full resync must not write at all.
        settling = op.writes() - edits_done
        start = _health(op)["resyncs"]
        wait_until(lambda: (h := _health(op))["resyncs"] >= start + 1 and h["idle"], timeout=30,
                   what="a full resync")
        converged = op.writes()
        wait_until(lambda: (h := _health(op))["resyncs"] >= start + 2 and h["idle"], timeout=30,
                   what="one more full resync")
        quiet = op.writes() - converged
        print(f"\noperator writes: {settling} to finish {len(NAMES)} rollouts after {ROUNDS} rounds of edits, "
              f"{quiet} in a full resync once converged")
    finally:
        op.kill()

    assert quiet == 0, f"{quiet} writes in a converged namespace: a fight with the other field manager"
    assert settling <= 25 * len(NAMES), settling
    for name, md in final.items():
        assert history(md) == [("v1", "Deployed"), ("v2", "Promoted")], brief(md)
        assert md["metadata"]["labels"]["team.example.com/owner"] == f"someone-{ROUNDS - 1}"
        assert md["metadata"]["annotations"]["example.com/ticket"] == f"OPS-{ROUNDS - 1}"
        for target in (f"deployment/{name}-stable", f"service/{name}", f"httproute/{name}"):
            meta = cluster.get_json("-n", ns, target)["metadata"]
            assert meta["labels"].get("team.example.com/owner") == f"someone-{ROUNDS - 1}", (target, meta["labels"])
            assert meta["annotations"].get("example.com/ticket") == f"OPS-{ROUNDS - 1}", (target, meta["annotations"])
        assert cluster.get_json("-n", ns, f"service/{name}-stable")["metadata"]["labels"]["cost-center"] == "ml-42"
        assert cluster.get_json("-n", ns, f"service/{name}")["metadata"]["labels"][
            "app.kubernetes.io/component"] == "model-server"
