"""The operator SIGKILLed at random moments during 20 concurrent canary
rollouts, restarted each time, five times over: every rollout still ends as it
would have without the kills -- the healthy canaries promoted, the
crash-looping ones rolled back -- with no child left behind and no history
entry written twice.

The kill schedule is random but seeded; the seed is printed, and
CHAOS_SEED=<seed> replays the same schedule."""
from __future__ import annotations

import os
import random
import time

from support.canary import GATEWAY, model_v, route_weights
from support.chaos import brief, children, expected_children, history, list_mds, reason
from support.models import is_true, model_deployment
from support.process import MeteredOperator
from support.waiting import wait_until

ROLLOUTS = 20
KILLS = 5
# Every fourth new version crash-loops: its canary must be rolled back.
CRASHING = {f"m{i:02d}" for i in range(ROLLOUTS) if i % 4 == 3}
STEPS = [{"setWeight": 25}, {"pause": {"duration": "5s"}}, {"setWeight": 50}, {"pause": {"duration": "5s"}}]
CANARY_PHASES = {"Canary", "Paused", "Promoting"}


def _docs():
    base = {n: model_deployment(n, replicas=1, traffic=GATEWAY, rollout={"steps": STEPS})
            for n in (f"m{i:02d}" for i in range(ROLLOUTS))}
    crash = {"labels": {"sim.modeldeploy.io/behavior": "crashloop"}}
    v2 = {n: model_v(doc, "v2", **({"podMetadata": crash} if n in CRASHING else {})) for n, doc in base.items()}
    return base, v2


def _settled(md: dict) -> bool:
    st = md.get("status", {})
    if st.get("observedGeneration") != md["metadata"]["generation"] or st.get("canary"):
        return False
    if md["metadata"]["name"] in CRASHING:
        return reason(md, "Stalled") == "RolledBack" and len(history(md)) >= 2
    return is_true(md, "Ready") and (st.get("stable") or {}).get("modelVersion") == "v2"


def test_sigkill_during_twenty_rollouts(cluster, own_namespace, tmp_path):
    ns = own_namespace
    seed = int(os.environ.get("CHAOS_SEED", time.time_ns() % 2**32))
    print(f"\nchaos seed: {seed} (CHAOS_SEED={seed} replays this kill schedule)")
    rng = random.Random(seed)
    base, v2 = _docs()
    op = MeteredOperator(cluster, ns, tmp_path / "operator.log").start()
    kills: list[str] = []
    try:
        cluster.apply(ns, list(base.values()))
        wait_until(lambda: len(mds := list_mds(cluster, ns)) == ROLLOUTS and all(
            is_true(m, "Ready") for m in mds.values()), timeout=90, what="20 ModelDeployments Ready",
            describe=lambda: [brief(m) for m in list_mds(cluster, ns).values() if not is_true(m, "Ready")])

        t0 = time.monotonic()
        cluster.apply(ns, list(v2.values()))
        for _ in range(KILLS):
            # The chaos schedule itself: a random moment, not a wait on the cluster.
            time.sleep(rng.uniform(0.2, 2.0))
            phases = [m.get("status", {}).get("phase") for m in list_mds(cluster, ns).values()]
            in_flight = sum(p in CANARY_PHASES for p in phases)
            op.kill()
            kills.append(f"t={time.monotonic() - t0:4.1f}s ({in_flight} canaries in flight)")
            op.start()
        print("SIGKILLs at: " + ", ".join(kills))
        def all_settled():
            mds = list_mds(cluster, ns)
            return all(_settled(m) for m in mds.values()) and mds

        final = wait_until(all_settled, timeout=120, what="every rollout to end",
                           describe=lambda: [brief(m) for m in list_mds(cluster, ns).values() if not _settled(m)])
        print(f"all {ROLLOUTS} rollouts ended {time.monotonic() - t0:.1f}s after the new versions were applied")
        # The kills must have landed mid-rollout, or this test proves nothing.
        assert int(kills[0].split("(")[1].split()[0]) > 0, kills

        # Nothing left over once the garbage settles: exactly the children of
        # 20 settled ModelDeployments, no canary Deployment, no stray route.
        want = set().union(*(expected_children(n) for n in final))
        wait_until(lambda: children(cluster, ns) == want, timeout=30, what="exactly the expected children",
                   describe=lambda: {"extra": sorted(children(cluster, ns) - want),
                                     "missing": sorted(want - children(cluster, ns))})
    finally:
        op.kill()

    for name, md in sorted(final.items()):
        if name in CRASHING:
            assert history(md) == [("v1", "Deployed"), ("v2", "RolledBack")], brief(md)
            assert md["status"]["stable"]["modelVersion"] == "v1", brief(md)
        else:
            assert history(md) == [("v1", "Deployed"), ("v2", "Promoted")], brief(md)
        # All traffic on the stable revision, whichever way it ended.
        assert route_weights(cluster, ns, name) == (100, 0), name
