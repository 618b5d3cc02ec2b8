"""Issue 12 (progressive delivery) on the real control plane: what the unit
tests of the pure machine show, seen here through the API server, the Job
controller, kwok-simulated pods, `kubectl get md -o wide` and the operator's
notifications.

- A BlueGreen preview whose PrePromotion smoke check (a Job, which kwok fails)
  runs before the switch: `kubectl get md` shows `Preview`, then
  `CheckRunning` with the Job in the Check column; the model rolls back with
  the route at 100/0 throughout, and a subscribed receiver gets `CheckFailed`
  and `RolledBack` exactly once each.
- A shadow step (`setMirror`): `kubectl get md` shows `Shadow` while the route
  copies requests to the canary and no client weight reaches it.
- Analysis during a shadow step, against a real Prometheus whose numbers the
  test sets: a failing metric rolls the canary back while it only saw copies,
  before the route ever gave it a client weight."""
from __future__ import annotations

import re

import pytest
import yaml

from modeldeploy.api import parse_spec
from modeldeploy.builders import compute_revision
from modeldeploy.runtimes import load_runtime_table
from support.canary import GATEWAY, WeightRecorder, canary_exists, model_v, wait_phase
from support.models import apply_md, condition, get_md, is_true, model_deployment, status_view, wait_ready
from support.notify_receiver import Receiver
from support.process import OperatorProcess
from support.sampling import ChangeRecorder
from support.waiting import holds_for, wait_until

NOTIFY = "modeldeploy.io/notify"


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def printed(cluster, ns, name) -> dict[str, str]:
    """The row `kubectl get md -o wide` prints, by column header (an empty
    cell, e.g. Check with no check running, reads as "")."""
    header, row = cluster.kubectl("get", "md", name, "-n", ns, "-o", "wide").stdout.splitlines()[:2]
    starts = [m.start() for m in re.finditer(r"\S+", header)] + [None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, starts[1:])}


def kubectl_rows(cluster, ns, name) -> ChangeRecorder:
    """Every distinct (PHASE, CANARY, CHECK) `kubectl get md -o wide` showed."""
    return ChangeRecorder(lambda: (lambda r: (r["PHASE"], r["CANARY"], r["CHECK"]))(printed(cluster, ns, name)))


def failing_check(name: str, at: str, finish_after: str) -> dict:
    """A smoke check whose Job's pod kwok ends Failed after `finish_after`."""
    return {"name": name, "at": at, "timeout": "2m", "job": {"template": {"template": {
        "metadata": {"labels": {"sim.modeldeploy.io/behavior": "fail"},
                     "annotations": {"sim.modeldeploy.io/finish-after": finish_after}},
        "spec": {"containers": [{"name": "smoke", "image": "python:3.12-slim",
                                 "command": ["python", "-c", "raise SystemExit(1)"]}]}}}}}


def mirror_of(cluster, ns, name) -> tuple[str, int] | None:
    """(Service, percent) the HTTPRoute's weighted rule copies requests to, or None."""
    [rule] = cluster.get_json("-n", ns, "httproute", name)["spec"]["rules"]
    for found in rule.get("filters") or ():
        if found["type"] == "RequestMirror":
            return found["requestMirror"]["backendRef"]["name"], found["requestMirror"].get("percent", 100)
    return None


def revision_of(doc: dict) -> str:
    """The revision the operator will compute for `doc` (the exporter labels
    the canary's requests with it before the canary exists)."""
    table = load_runtime_table()
    return compute_revision(parse_spec(doc["spec"], known_formats=table.known_formats), table)


def test_a_failed_pre_promotion_check_rolls_the_blue_green_preview_back_before_the_switch(
        cluster, own_namespace, tmp_path, receiver):
    """The check runs on the preview (Preview, then CheckRunning with its Job
    shown by kubectl), fails, rolls back at 100/0; CheckFailed and
    RolledBack arrive once each."""
    ns, name = own_namespace, "bg-checked"
    config = tmp_path / "notify.yaml"
    config.write_text(yaml.safe_dump({"endpoints": {"hook": {"url": receiver.url("/hook")}},
                                      "retry": {"maxAttempts": 3, "initialDelaySeconds": 0.2, "maxDelaySeconds": 1}}))
    op = OperatorProcess(cluster, ns, tmp_path / "operator.log", env={"MODELDEPLOY_NOTIFY_CONFIG": str(config)})
    rollout = {"strategy": "BlueGreen", "blueGreen": {"autoPromote": True, "scaleDownDelay": "0s"},
               "checks": [failing_check("e2e", "PrePromotion", finish_after="5s")]}
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout=rollout)
    doc["metadata"]["annotations"] = {NOTIFY: "hook"}  # every event
    seen = lambda: {"hook": receiver.events("/hook"), "status": status_view(get_md(cluster, ns, name))}  # noqa: E731
    op.start()
    try:
        apply_md(cluster, ns, doc)
        wait_ready(cluster, ns, name)
        v2 = model_v(doc, "v2")
        # The preview's pods take 3 s to become ready: long enough to see the phase Preview.
        v2["spec"]["podMetadata"] = {"annotations": {"sim.modeldeploy.io/ready-after": "3s"}}
        with WeightRecorder(cluster, ns, name) as weights, kubectl_rows(cluster, ns, name) as rows:
            apply_md(cluster, ns, v2)
            running = wait_phase(cluster, ns, name, "CheckRunning", timeout=60)
            preview = cluster.apps.read_namespaced_deployment(f"{name}-canary", ns)
            assert (preview.spec.replicas, preview.status.ready_replicas) == (2, 2), \
                "the check runs against the full-size preview"
            rolled = wait_phase(cluster, ns, name, "RolledBack", timeout=60)
            wait_until(lambda: not canary_exists(cluster, ns, name), timeout=30, what="the preview removed")
            wait_until(lambda: receiver.events("/hook") == ["CanaryStarted", "CheckFailed", "RolledBack"],
                       timeout=30, what="CanaryStarted, CheckFailed, RolledBack", describe=seen)
        # Nothing arrives twice while the operator keeps reconciling (a resync every 6 s).
        holds_for(lambda: len(receiver.at("/hook")) == 3, seconds=7, what="no further arrival", describe=seen)
    finally:
        op.kill()

    assert set(weights.seen) == {(100, 0)}, f"no client request ever reached the preview: {weights.seen}"
    job = running["status"]["rollout"]["check"]["job"]
    phases = [phase for phase, _, _ in rows.seen]
    assert "Preview" in phases and "CheckRunning" in phases, rows.seen
    assert phases.index("Preview") < phases.index("CheckRunning") < phases.index("RolledBack"), rows.seen
    assert ("CheckRunning", "0", job) in rows.seen, f"kubectl -o wide names the Job in the Check column: {rows.seen}"
    assert all(check == "" for phase, _, check in rows.seen if phase != "CheckRunning"), rows.seen
    assert all(canary == "0" for _, canary, _ in rows.seen), f"the Canary column never moved: {rows.seen}"

    assert rolled["status"]["stable"]["modelVersion"] == "v1"
    assert job in rolled["status"]["rollout"]["message"], rolled["status"]["rollout"]["message"]
    [record] = [r for r in rolled["status"]["rollout"]["decisions"] if r["metric"] == "check/e2e"]
    assert (record["job"], record["outcome"], record["action"]) == (job, "Failed", "Rollback")
    [made] = cluster.get_json("-n", ns, "jobs", "-l", f"modeldeploy.io/name={name}")["items"]
    assert made["metadata"]["name"] == job
    env = {e["name"]: e["value"] for e in made["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELDEPLOY_CANARY_URL"] == f"http://{name}-canary.{ns}.svc:80"
    assert env["MODELDEPLOY_CANARY_VERSION"] == "v2"

    started, failed, rolled_back = receiver.at("/hook")
    assert len({b["id"] for b in receiver.at("/hook")}) == 3
    assert failed["modelVersion"] == rolled_back["modelVersion"] == "v2"
    assert failed["revision"] == rolled_back["revision"] == started["revision"]
    assert job in failed["message"] and "e2e" in failed["message"], failed["message"]
    assert rolled_back["versions"]["stable"] == "v1"


def test_a_shadow_step_shows_phase_shadow_while_the_canary_gets_copies_only(cluster, namespace, operator):
    """kubectl shows Shadow (Canary column 0) while the route copies 30% of
    the requests to the canary; the copies end with the promotion."""
    name = "shadow-phase"
    rollout = {"steps": [{"setMirror": {"percent": 30}}, {"pause": {"duration": "10s"}}]}
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout=rollout)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, name)
    with WeightRecorder(cluster, namespace, name) as weights:
        apply_md(cluster, namespace, model_v(doc, "v2"))
        row = wait_until(lambda: (r := printed(cluster, namespace, name))["PHASE"] == "Shadow" and r, timeout=60,
                         what="kubectl get md to show phase Shadow",
                         describe=lambda: (printed(cluster, namespace, name),
                                           status_view(get_md(cluster, namespace, name))))
        shadow = get_md(cluster, namespace, name)
        route_mirror = mirror_of(cluster, namespace, name)
        done = wait_until(lambda: is_true(m := get_md(cluster, namespace, name), "Ready")
                          and m["status"]["stable"]["modelVersion"] == "v2" and m, timeout=60, what="promotion",
                          describe=lambda: status_view(get_md(cluster, namespace, name)))
    assert (row["VERSION"], row["CANARY"]) == ("v2", "0"), row
    assert shadow["status"]["phase"] == "Shadow", status_view(shadow)
    assert shadow["status"]["traffic"] == {"stable": 100, "canary": 0, "verified": True, "mirror": 30}
    assert shadow["status"]["canary"]["readyReplicas"] >= 1, "copies go only to a canary pod that can take them"
    assert route_mirror == (f"{name}-canary", 30), route_mirror
    assert "a copy of 30% of the requests" in condition(shadow, "Ready")["message"]
    assert set(weights.seen) == {(100, 0)}, f"a shadow step moves no client traffic: {weights.seen}"
    assert mirror_of(cluster, namespace, name) is None, "the copies end with the rollout"
    assert "mirror" not in done["status"]["traffic"]


def test_analysis_on_shadow_copies_rolls_back_before_any_client_weight(cluster, namespace, operator, prometheus):
    """A failing error rate, judged while the canary sees only copies, rolls
    it back: the route never gave it a client weight."""
    name = "shadow-judged"
    window = "10s"
    rollout = {
        "steps": [{"setMirror": {"percent": 50}}, {"pause": {"duration": "60s"}}, {"setWeight": 50}, {"pause": {}}],
        "analysis": {
            "interval": "2s", "failureLimit": 1, "minSamples": 20, "onInconclusive": "Pause",
            "samplesQuery": f'sum(increase(requests_total{{revision="{{{{canary.revision}}}}"}}[{window}]))',
            "prometheus": {"address": prometheus.url},
            "metrics": [{"name": "error-rate", "max": 0.05, "query":
                         f'sum(rate(requests_total{{revision="{{{{canary.revision}}}}",code="500"}}[{window}])) / '
                         f'sum(rate(requests_total{{revision="{{{{canary.revision}}}}"}}[{window}]))'}]}}
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout=rollout)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, name)
    v2 = model_v(doc, "v2")
    # The copies the canary answers: a third of them fail.
    prometheus.exporter.set(revision_of(v2), ok_per_second=20, errors_per_second=10)

    def moment():
        status = get_md(cluster, namespace, name)["status"]
        fails = [d for d in (status.get("rollout") or {}).get("decisions") or () if d["verdict"] == "Fail"]
        return status.get("phase"), (status.get("traffic") or {}).get("mirror"), len(fails)

    with WeightRecorder(cluster, namespace, name) as weights, ChangeRecorder(moment) as moments:
        apply_md(cluster, namespace, v2)
        rolled = wait_phase(cluster, namespace, name, "RolledBack", timeout=90)
        wait_until(lambda: not canary_exists(cluster, namespace, name), timeout=30, what="the canary removed")
    assert set(weights.seen) == {(100, 0)}, f"no client request ever reached the canary: {weights.seen}"
    assert ("Shadow", 50, 1) in moments.seen, f"the first failed check came during the shadow step: {moments.seen}"
    fails = [d for d in rolled["status"]["rollout"]["decisions"] if d["verdict"] == "Fail"]
    assert len(fails) == 2 and fails[-1]["action"] == "Rollback", fails  # failureLimit 1: the second rolls back
    assert all(d["metric"] == "error-rate" and d["value"] > 0.05 and d["samples"] >= 20 for d in fails), fails
    assert "error-rate" in condition(rolled, "Stalled")["message"]
    assert rolled["status"]["stable"]["modelVersion"] == "v1"
    assert "mirror" not in rolled["status"]["traffic"] and mirror_of(cluster, namespace, name) is None
