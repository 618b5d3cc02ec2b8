"""Issue 12 item 4 on the real control plane: smoke checks run as Jobs the
operator creates, which the control plane's Job controller completes or
fails from their pods' phases (kwok's pod-succeed / pod-fail stages, picked
by the pod label sim.modeldeploy.io/behavior)."""
from __future__ import annotations

import json

from support.canary import GATEWAY, WeightRecorder, canary_exists, model_v
from support.operator import AuditLog, describe_writes
from support.models import apply_md, get_md, is_true, model_deployment, status_view, wait_ready
from support.process import OperatorProcess
from support.waiting import wait_until

STEPS = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]


def check(name, at, behavior, finish_after="1s", timeout="2m"):
    return {"name": name, "at": at, "timeout": timeout, "job": {"template": {"template": {
        "metadata": {"labels": {"sim.modeldeploy.io/behavior": behavior},
                     "annotations": {"sim.modeldeploy.io/finish-after": finish_after}},
        "spec": {"containers": [{"name": "smoke", "image": "python:3.12-slim",
                                 "command": ["python", "-c", "print('ok')"]}]}}}}}


def jobs(cluster, ns, name):
    items = cluster.get_json("-n", ns, "jobs", "-l", f"modeldeploy.io/name={name}")["items"]
    return sorted(items, key=lambda j: j["metadata"]["creationTimestamp"])


def check_records(md):
    return [r for r in (md["status"].get("rollout") or {}).get("decisions", []) if r["metric"].startswith("check/")]


def test_a_failed_pre_rollout_check_rolls_back_before_any_client_traffic(cluster, namespace, operator):
    name = "smoke-fail"
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout={"steps": STEPS})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, name)
    with WeightRecorder(cluster, namespace, name) as recorder:
        apply_md(cluster, namespace, model_v(doc, "v2", rollout={"steps": STEPS,
                                                                 "checks": [check("predict", "PreRollout", "fail")]}))
        rolled = wait_until(lambda: (m := get_md(cluster, namespace, name))["status"].get("phase") == "RolledBack"
                            and m, timeout=90, what="the rollback",
                            describe=lambda: status_view(get_md(cluster, namespace, name)))
        wait_until(lambda: not canary_exists(cluster, namespace, name), timeout=30, what="the canary removed")
    assert set(recorder.seen) == {(100, 0)}, f"no client traffic ever reached the canary: {recorder.seen}"
    [job] = jobs(cluster, namespace, name)
    job_name = job["metadata"]["name"]
    assert job["metadata"]["labels"]["modeldeploy.io/revision"] == rolled["status"]["rollout"]["revision"]
    assert job["metadata"]["ownerReferences"][0]["name"] == name
    assert job_name in rolled["status"]["rollout"]["message"]
    [record] = check_records(rolled)
    assert (record["job"], record["outcome"], record["action"]) == (job_name, "Failed", "Rollback")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELDEPLOY_CANARY_URL"] == f"http://{name}-canary.{namespace}.svc:80"
    assert env["MODELDEPLOY_CANARY_VERSION"] == "v2"
    assert env["MODELDEPLOY_CANARY_REVISION"] == rolled["status"]["rollout"]["revision"]
    events = cluster.get_json("-n", namespace, "events", "--field-selector",
                              f"involvedObject.name={name},reason=CheckFailed")["items"]
    assert events and job_name in events[0]["message"], events


def test_a_pre_promotion_check_that_passes_promotes_and_old_jobs_are_pruned_to_the_last_three(
        cluster, namespace, operator):
    name = "smoke-pass"
    rollout = {"steps": STEPS, "checks": [check("predict", "PrePromotion", "succeed")]}
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout=rollout)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, name)
    made = []
    for version in ("v2", "v3", "v4", "v5"):
        apply_md(cluster, namespace, model_v(doc, version))
        done = wait_until(lambda: is_true(m := get_md(cluster, namespace, name), "Ready")
                          and m["status"]["stable"]["modelVersion"] == version and m, timeout=90,
                          what=f"{version} promoted", describe=lambda: status_view(get_md(cluster, namespace, name)))
        record = check_records(done)[-1]
        assert record["outcome"] == "Passed" and record["job"] not in made
        made.append(record["job"])
    wait_until(lambda: [j["metadata"]["name"] for j in jobs(cluster, namespace, name)] == made[1:], timeout=30,
               what="the oldest Job pruned, the last three kept",
               describe=lambda: [j["metadata"]["name"] for j in jobs(cluster, namespace, name)])
    assert [h["result"] for h in done["status"]["history"]][-4:] == ["Promoted"] * 4
    # The finished Jobs kept for their logs are a steady state: no write.
    audit = AuditLog(cluster)
    operator.wait_for_resync()
    mark = audit.mark()
    operator.wait_for_resync()
    operator.wait_for_resync()
    writes = [e for e in audit.writes_since(mark) if f"/namespaces/{namespace}/" in e["requestURI"]]
    assert writes == [], describe_writes(writes)


def test_the_api_server_refuses_bad_checks(cluster, namespace):
    for rollout, traffic, message in [
        ({"steps": STEPS, "checks": [check("a", "Step 0", "succeed")]}, GATEWAY, "should match"),
        ({"steps": STEPS, "checks": [check("a", "PreRollout", "succeed"), check("a", "PrePromotion", "succeed")]},
         GATEWAY, "rollout.checks names must be unique"),
        ({"steps": STEPS, "checks": [check("a", "PreRollout", "succeed")]}, None,
         "checks at PreRollout need traffic.provider gatewayAPI or istio"),
    ]:
        doc = model_deployment("refused", replicas=1, rollout=rollout, **({"traffic": traffic} if traffic else {}))
        refused = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc), check=False)
        assert refused.returncode != 0 and message in refused.stderr, refused.stderr


def test_a_restarted_operator_finds_the_running_check_job_and_makes_no_second(cluster, own_namespace, tmp_path):
    ns, name = own_namespace, "smoke-restart"
    rollout = {"steps": STEPS, "checks": [check("predict", "PreRollout", "succeed", finish_after="15s")]}
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout=rollout)
    op = OperatorProcess(cluster, ns, tmp_path / "operator.log").start()
    try:
        apply_md(cluster, ns, doc)
        wait_ready(cluster, ns, name)
        apply_md(cluster, ns, model_v(doc, "v2"))
        running = wait_until(lambda: (m := get_md(cluster, ns, name))["status"].get("phase") == "CheckRunning" and m,
                             timeout=60, what="the check running",
                             describe=lambda: status_view(get_md(cluster, ns, name)))
        op.kill()
        op.start()
        done = wait_until(lambda: is_true(m := get_md(cluster, ns, name), "Ready")
                          and m["status"]["stable"]["modelVersion"] == "v2" and m, timeout=90, what="promotion",
                          describe=lambda: status_view(get_md(cluster, ns, name)))
    finally:
        op.kill()
    [job] = jobs(cluster, ns, name)
    assert job["metadata"]["name"] == running["status"]["rollout"]["check"]["job"]
    assert [r["job"] for r in check_records(done)] == [job["metadata"]["name"]]
