"""State lives in the status: an operator SIGKILLed in the middle of a
rollout and restarted finishes it exactly as if uninterrupted -- no step
repeated, skipped or lost, no history entry duplicated."""
from __future__ import annotations



from support.canary import GATEWAY, WeightRecorder, canary_exists, model_v
from support.models import apply_md, get_md, is_true, model_deployment, status_view, wait_ready
from support.process import OperatorProcess
from support.waiting import wait_until


STEPS = [{"setWeight": 20}, {"pause": {"duration": "2s"}}, {"setWeight": 40}, {"pause": {"duration": "2s"}},
         {"setWeight": 60}, {"pause": {"duration": "2s"}}]


def test_sigkill_mid_rollout_resumes_where_it_was(cluster, own_namespace, tmp_path):
    ns = own_namespace
    doc = model_deployment("resumable", replicas=2, traffic=GATEWAY, rollout={"steps": STEPS})
    op = OperatorProcess(cluster, ns, tmp_path / "operator.log").start()
    try:
        apply_md(cluster, ns, doc)
        wait_ready(cluster, ns, "resumable")
        with WeightRecorder(cluster, ns, "resumable") as recorder:
            apply_md(cluster, ns, model_v(doc, "v2"))
            # Kill it at each step of the rollout: while at 20%, at 40% and at 60%.
            for step_weight in (20, 40, 60):
                wait_until(lambda: (get_md(cluster, ns, "resumable")["status"].get("rollout") or {})
                           .get("weight") == step_weight, timeout=60, what=f"the {step_weight}% step",
                           describe=lambda: status_view(get_md(cluster, ns, "resumable")))
                op.kill()
                op.start()
            done = wait_until(lambda: is_true(m := get_md(cluster, ns, "resumable"), "Ready")
                              and m["status"]["stable"]["modelVersion"] == "v2" and m,
                              timeout=90, what="promotion", describe=lambda: status_view(get_md(cluster, ns, "resumable")))
            wait_until(lambda: not canary_exists(cluster, ns, "resumable"), timeout=30, what="the canary removed")
    finally:
        op.kill()
    canary_weights = [w[1] for w in recorder.seen]
    assert canary_weights == [0, 20, 40, 60, 0], recorder.seen  # each step once, in order
    assert [(h["modelVersion"], h["result"]) for h in done["status"]["history"]] == [("v1", "Deployed"),
                                                                                        ("v2", "Promoted")]
