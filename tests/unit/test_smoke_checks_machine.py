"""Issue 12 item 4: prediction smoke tests as rollout checks (rollout.checks),
through the pure machine (support/rollout_world.py: every pass starts from
the stored status only, as after an operator restart), the Job builder and
the plan's pruning."""

from datetime import timedelta

import pytest

from modeldeploy.api import InvalidSpec
from modeldeploy.builders import Owner
from modeldeploy.builders.job import build_check_job, check_job_name
from modeldeploy.rollout import PROMOTE
from modeldeploy.rollout.smoke import TIMEOUT_GRACE_SECONDS, jobs_to_prune
from modeldeploy.status.observed import DeploymentCondition, JobSummary, summarize_job
from modeldeploy.traffic import ALL_STABLE
from support.golden import assert_matches_golden
from support.rollout_world import START, run, settled_world, spec_for

GATEWAY = {"provider": "gatewayAPI", "gatewayAPI": {"parentRefs": [{"name": "public"}]}}
HEADERS = [{"name": "x-model-canary", "value": "true"}]
OWNER = Owner(name="fraud", namespace="ml", uid="0b7e6a4c-1111-4222-8333-944455556666")
JOB = {"template": {"spec": {"containers": [{"name": "smoke", "image": "python:3.12-slim",
                                             "command": ["python", "/check/smoke.py"]}]}}}
STEPS = [{"setWeight": 20}, {"pause": {"duration": "10s"}}, {"setWeight": 50}, {"pause": {"duration": "10s"}}]


def check(name="smoke", at="PreRollout", **extra):
    return {"name": name, "at": at, "job": {"template": JOB}, "timeout": "2m", **extra}


def v(version, checks=(), steps=STEPS, traffic=GATEWAY, replicas=4):
    return spec_for(version, replicas=replicas, traffic=traffic, rollout={"steps": steps, "checks": list(checks)})


def canary_with(*checks, steps=STEPS, traffic=GATEWAY):
    world = settled_world(v("v1", checks, steps=steps, traffic=traffic))
    world.change(v("v2", checks, steps=steps, traffic=traffic))
    return world


def weights_seen(world):
    return [decision.weights.canary for decision in world.decisions]


def records(world):
    return [r for r in world.rollout.get("decisions", []) if r["metric"].startswith("check/")]


# -- PreRollout -------------------------------------------------------------------


def test_a_pre_rollout_check_runs_once_a_canary_pod_is_ready_and_before_any_client_traffic():
    world = canary_with(check())
    decision = world.reconcile()
    assert decision.canary_replicas == 1 and decision.weights == ALL_STABLE
    assert world.created_jobs == [], "no Job before a canary pod is ready"
    world.pods_ready()
    decision = world.reconcile()
    assert len(world.created_jobs) == 1
    job = world.created_jobs[0]
    assert world.rollout["check"] == {"name": "smoke", "job": job, "at": "PreRollout", "phase": "Running",
                                      "startedAt": "2025-03-01T12:00:00Z", "timeoutSeconds": 120}
    assert world.phase == "CheckRunning"
    assert world.condition("Ready") == ("False", "CheckRunning")
    assert job in world.condition_message("Ready")
    assert "CheckStarted" in [e.reason for e in decision.events]
    run(world, passes=5, seconds=10)
    assert set(weights_seen(world)) == {0}, "the check still runs: no weight"
    assert world.rollout["step"] == 0 and len(world.created_jobs) == 1, "one Job, found again on every pass"


def test_a_failed_pre_rollout_check_rolls_back_and_no_client_traffic_ever_reaches_the_canary():
    world = canary_with(check())
    run(world, passes=2)
    job = world.finish_job("Failed")
    decision = world.reconcile()
    run(world, passes=3, seconds=5)
    assert world.phase == "RolledBack" and world.results()[-1] == "RolledBack"
    assert set(weights_seen(world)) == {0}
    assert job in world.rollout["message"] and "check smoke (PreRollout) failed" in world.rollout["message"]
    assert [e.reason for e in decision.events][:2] == ["CheckFailed", "RolledBack"]
    assert job in decision.events[0].message
    assert records(world)[-1] | {"time": None} == {
        "time": None, "metric": "check/smoke", "job": job, "outcome": "Failed", "verdict": "Fail",
        "action": "Rollback", "message": f"failed: Job {job} failed (BackoffLimitExceeded)"}
    assert "check" not in world.rollout and world.canary is None


def test_header_requests_stay_on_stable_until_the_pre_rollout_check_passed():
    traffic = {**GATEWAY, "canaryHeaders": HEADERS}
    world = canary_with(check(), traffic=traffic)
    run(world, passes=3)
    assert world.headers_to_canary is False, "a pending PreRollout check: no header-routed request to the canary"
    world.finish_job("Complete")
    run(world, passes=2)
    assert world.headers_to_canary is True


def test_a_passed_pre_rollout_check_lets_the_steps_run_and_is_logged_with_its_job():
    world = canary_with(check())
    run(world, passes=2)
    job = world.finish_job("Complete")
    run(world, passes=3)
    assert world.rollout["passedChecks"] == ["smoke"]
    assert records(world)[-1]["job"] == job and records(world)[-1]["outcome"] == "Passed"
    assert max(weights_seen(world)) == 20
    run(world, passes=12, seconds=6)
    assert world.results()[-1] == "Promoted" and world.created_jobs == [job]


# -- PrePromotion and Step N ---------------------------------------------------------


def test_a_pre_promotion_check_runs_after_every_step_and_gates_promotion():
    world = canary_with(check("e2e", "PrePromotion"))
    run(world, passes=12, seconds=6)
    assert world.rollout["stage"] == "Canary" and world.rollout["step"] == 4
    assert world.created_jobs and world.rollout["check"]["at"] == "PrePromotion"
    assert world.rollout["weight"] == 50, "the last step's weight holds while the check runs"
    run(world, passes=3, seconds=6)
    assert "Promoted" not in world.results()
    world.finish_job("Complete")
    run(world, passes=4)
    assert world.results()[-1] == "Promoted"


def test_a_failed_pre_promotion_check_never_promotes():
    world = canary_with(check("e2e", "PrePromotion"))
    run(world, passes=12, seconds=6)
    world.finish_job("Failed")
    run(world, passes=4)
    assert world.results()[-1] == "RolledBack" and "Promoted" not in world.results()
    assert world.status["stable"]["modelVersion"] == "v1"


def test_step_n_is_one_based_and_runs_before_that_step_acts():
    world = canary_with(check("mid", "Step 3"))  # before setWeight 50
    run(world, passes=6, seconds=6)
    assert world.rollout["step"] == 2 and world.rollout["weight"] == 20
    assert world.rollout["check"]["name"] == "mid"
    run(world, passes=3, seconds=6)
    assert world.rollout["weight"] == 20
    world.finish_job("Complete")
    run(world, passes=2)
    assert world.rollout["weight"] == 50


def test_checks_at_one_point_run_one_at_a_time_in_order():
    world = canary_with(check("first"), check("second"))
    run(world, passes=2)
    assert world.rollout["check"]["name"] == "first" and len(world.created_jobs) == 1
    world.finish_job("Complete")
    run(world, passes=1)
    assert world.rollout["check"]["name"] == "second" and len(world.created_jobs) == 2
    assert set(weights_seen(world)) == {0}


# -- time-outs --------------------------------------------------------------------


def test_a_job_ended_by_its_deadline_is_a_timed_out_check():
    world = canary_with(check())
    run(world, passes=2)
    job = world.finish_job("DeadlineExceeded")
    run(world, passes=1)
    assert records(world)[-1]["outcome"] == "TimedOut"
    assert world.rollout["message"] == f"check smoke (PreRollout) timed out: Job {job} did not finish within 2m"


def test_a_job_that_never_finishes_times_out_after_its_timeout_and_a_grace():
    world = canary_with(check())
    run(world, passes=2)
    world.later(120 + TIMEOUT_GRACE_SECONDS - 1)
    decision = world.reconcile()
    assert world.rollout["stage"] == "Canary"
    assert decision.requeue_after is not None and decision.requeue_after <= 2
    world.later(2)
    world.reconcile()
    assert world.rollout["stage"] == "RolledBack" and records(world)[-1]["outcome"] == "TimedOut"


# -- restarts, retries, promote ------------------------------------------------------


def test_the_job_name_comes_from_the_stored_status_so_a_restarted_operator_finds_its_job():
    world = canary_with(check())
    run(world, passes=2)
    first = world.created_jobs[0]
    assert first == check_job_name("fraud", "smoke", world.rollout["revision"], world.rollout["canaryStartedAt"])
    run(world, passes=3)  # every pass reads the status only, as after a restart
    assert world.created_jobs == [first]


def test_a_revision_tried_again_after_a_rollback_gets_a_new_job():
    world = canary_with(check())
    run(world, passes=2)
    first = world.finish_job("Failed")
    run(world, passes=2)
    world.change(v("v1", [check()]))
    run(world, passes=2)
    world.later(60)
    world.change(v("v2", [check()]))
    run(world, passes=3)
    assert len(world.created_jobs) == 2 and world.created_jobs[1] != first
    assert world.rollout["stage"] == "Canary", "the earlier failure is not this attempt's"


def test_the_promote_annotation_skips_steps_but_not_the_pre_rollout_check():
    world = canary_with(check(), check("e2e", "PrePromotion"))
    run(world, passes=2)
    world.annotations[PROMOTE] = "true"
    run(world, passes=3)
    assert "Promoted" not in world.results() and set(weights_seen(world)) == {0}
    assert world.rollout["step"] == 4 and world.rollout["check"]["name"] == "smoke"
    world.finish_job("Complete")
    run(world, passes=1)
    assert world.rollout["check"]["name"] == "e2e"
    world.finish_job("Complete")
    run(world, passes=4)
    assert world.results()[-1] == "Promoted"


def test_a_check_failing_while_an_abort_comes_in_is_aborted_once():
    world = canary_with(check())
    run(world, passes=2)
    world.annotations["modeldeploy.io/abort"] = "true"
    world.finish_job("Failed")
    run(world, passes=2)
    assert world.results().count("RolledBack") == 1 and world.results()[-1] == "RolledBack"


# -- the spec -------------------------------------------------------------------------


@pytest.mark.parametrize("checks, steps, traffic, error", [
    ([check(at="Step 5")], STEPS, GATEWAY, "Step 5 names no step: rollout.steps has 4"),
    ([check(at="Step 0")], STEPS, GATEWAY, "String should match pattern"),
    ([check(at="Before")], STEPS, GATEWAY, "String should match pattern"),
    ([check(), check()], STEPS, GATEWAY, r"names must be unique \(repeated: smoke\)"),
    ([check()], STEPS, {"provider": "replicas"}, "need traffic.provider gatewayAPI or istio"),
    ([{**check(), "job": {"template": {"template": {"spec": {}}}}}], STEPS, GATEWAY,
     "needs template.spec.containers"),
    ([{**check(), "job": {"template": {**JOB, "ttlSecondsAfterFinished": 5}}}], STEPS, GATEWAY,
     "is the operator's to set"),
    ([check(name="a-check-name-longer-than-20")], STEPS, GATEWAY, "at most 20"),
])
def test_bad_checks_are_refused_with_the_reason(checks, steps, traffic, error):
    with pytest.raises(InvalidSpec, match=error):
        v("v1", checks, steps=steps, traffic=traffic)


def test_pre_promotion_and_step_checks_work_with_the_replicas_provider():
    world = canary_with(check("e2e", "PrePromotion"), traffic={"provider": "replicas"})
    run(world, passes=12, seconds=6)
    assert world.rollout["check"]["name"] == "e2e"
    world.finish_job("Complete")
    run(world, passes=6)
    assert world.results()[-1] == "Promoted"


# -- the Job ---------------------------------------------------------------------------


def job_for(template=JOB):
    return build_check_job(OWNER, check="smoke", job_name="fraud-smoke-1a2b3c4d", template=template,
                           timeout_seconds=120, revision="abcdef0123", model_version="v2")


def test_the_check_job_golden():
    assert_matches_golden("check-job", [job_for()])


def test_the_job_names_the_canary_service_revision_and_version_and_runs_restricted():
    job = job_for()
    pod = job["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env == {"MODELDEPLOY_CANARY_URL": "http://fraud-canary.ml.svc:80", "MODELDEPLOY_CANARY_REVISION": "abcdef0123",
                   "MODELDEPLOY_CANARY_VERSION": "v2", "MODELDEPLOY_MODEL_NAME": "fraud"}
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 120
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert job["metadata"]["labels"]["modeldeploy.io/revision"] == "abcdef0123"
    assert job["metadata"]["labels"]["modeldeploy.io/check"] == "smoke"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
    assert "modeldeploy.io/name" not in job["spec"]["template"]["metadata"]["labels"], \
        "the model's pod watch and Services must never count a check's pod"


def test_the_users_settings_win_except_our_env_vars():
    template = {"backoffLimit": 2, "activeDeadlineSeconds": 30, "template": {"spec": {
        "securityContext": {"runAsUser": 1000, "runAsNonRoot": True},
        "containers": [{"name": "smoke", "image": "x", "securityContext": {"readOnlyRootFilesystem": True},
                        "env": [{"name": "MODELDEPLOY_CANARY_URL", "value": "http://elsewhere"},
                                {"name": "EXPECTED", "value": "1"}]}]}}}
    job = job_for(template)
    pod = job["spec"]["template"]["spec"]
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (2, 30)
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsNonRoot": True}
    assert pod["containers"][0]["securityContext"] == {"readOnlyRootFilesystem": True}
    env = pod["containers"][0]["env"]
    assert env[0] == {"name": "EXPECTED", "value": "1"}
    assert {"name": "MODELDEPLOY_CANARY_URL", "value": "http://fraud-canary.ml.svc:80"} in env
    assert template["template"]["spec"]["containers"][0]["env"][0]["value"] == "http://elsewhere", "not mutated"


@pytest.mark.parametrize("name, check_name", [("fraud", "smoke"), ("m" * 45, "c" * 20)])
def test_job_names_are_deterministic_and_fit_a_label(name, check_name):
    first = check_job_name(name, check_name, "abcdef0123", "2025-03-01T12:00:00Z")
    assert first == check_job_name(name, check_name, "abcdef0123", "2025-03-01T12:00:00Z")
    assert len(first) <= 63 and first[0].isalnum() and first[-1].isalnum()
    assert first != check_job_name(name, check_name, "abcdef0123", "2025-03-01T12:05:00Z")
    assert first != check_job_name(name, check_name, "abcdef0124", "2025-03-01T12:00:00Z")


def finished(name, check_name, minute, outcome="Complete"):
    return JobSummary(name=name, labels={"modeldeploy.io/check": check_name}, succeeded=1,
                      conditions=(DeploymentCondition(outcome, "True"),),
                      created_at=START + timedelta(minutes=minute))


def test_the_last_three_finished_jobs_per_check_are_kept_and_a_running_one_no_check_waits_on_goes():
    jobs = [finished(f"smoke-{i}", "smoke", i) for i in range(5)] + [finished("e2e-0", "e2e", 0, "Failed")]
    jobs.append(JobSummary(name="smoke-orphan", labels={"modeldeploy.io/check": "smoke"}, active=1,
                           created_at=START))
    jobs.append(JobSummary(name="smoke-now", labels={"modeldeploy.io/check": "smoke"}, active=1, created_at=START))
    assert jobs_to_prune(jobs, wanted={"smoke-now"}) == ["smoke-0", "smoke-1", "smoke-orphan"]


def test_a_job_summary_reads_the_job_controllers_status():
    body = {"metadata": {"name": "j", "labels": {"a": "b"}, "creationTimestamp": "2025-03-01T12:00:00Z"},
            "status": {"failed": 1, "startTime": "2025-03-01T12:00:01Z",
                       "conditions": [{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"},
                                      {"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}}
    job = summarize_job(body)
    assert (job.failed, job.condition("Failed").reason, job.condition("Complete")) == (1, "DeadlineExceeded", None)


# -- the plan: the Job created once, never re-applied, pruned to the last few ----------


def test_the_plan_creates_the_job_once_never_reapplies_it_and_prunes_it_after_the_rollout():
    from test_plan import GATEWAY as ROUTED, Loop, spec as raw_spec

    checks = [{"name": "smoke", "at": "PreRollout", "job": {"template": JOB}, "timeout": "2m"}]
    loop = Loop(traffic=ROUTED, rollout={"steps": [{"setWeight": 50}], "checks": checks})
    loop.run(), loop.run()
    created = []
    for version in ("v8", "v9", "v10", "v11"):
        loop.model = {**loop.model, "spec": raw_spec(version, traffic=ROUTED,
                                                     rollout={"steps": [{"setWeight": 50}], "checks": checks})}
        made = [m for step in (loop.run(), loop.run(), loop.run()) for m in step.apply if m["kind"] == "Job"]
        assert len(made) == 1, "one Job per canary, applied once"
        job = made[0]["metadata"]["name"]
        assert loop.status["rollout"]["check"]["job"] == job
        assert all(m["kind"] != "Job" for m in loop.run().apply), "a live Job is never re-applied"
        loop.children[("Job", job)]["status"] = {"succeeded": 1,
                                                 "conditions": [{"type": "Complete", "status": "True"}]}
        loop.children[("Job", job)]["metadata"]["creationTimestamp"] = loop.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        outcomes = [outcome for _ in range(4) for outcome in loop.run().check_outcomes]
        assert outcomes == ["Passed"], "counted once, for the operator's metrics"
        assert loop.status["stable"]["modelVersion"] == version
        created.append(job)
    jobs = sorted(name for kind, name in loop.children if kind == "Job")
    assert jobs == sorted(created[1:]), "the last three kept"
    assert [key for step in loop.plans for key in step.prune if key[0] == "Job"] == [("Job", created[0])]


# -- checks and the spec changing mid-flight; promote and a failed check ------------------


def test_a_pre_rollout_check_added_before_the_canary_had_traffic_gates_its_first_weight():
    steps = [{"pause": {"duration": "10s"}}, {"setWeight": 50}, {"pause": {"duration": "10s"}}]
    world = canary_with(steps=steps)
    run(world, passes=2, seconds=11)
    assert world.rollout["step"] == 1 and world.rollout["weight"] == 0
    world.change(v("v2", [check()], steps=steps))
    run(world, passes=4, seconds=5)
    assert set(weights_seen(world)) == {0} and world.rollout["check"]["name"] == "smoke"
    world.finish_job("Complete")
    run(world, passes=2)
    assert world.rollout["weight"] == 50


def test_a_step_check_that_failed_rolls_back_even_when_a_promote_comes_in_the_same_pass():
    world = canary_with(check("mid", "Step 2"))
    run(world, passes=5, seconds=1)
    assert world.rollout["check"]["name"] == "mid"
    world.finish_job("Failed")
    world.annotations[PROMOTE] = "true"
    run(world, passes=3)
    assert world.results()[-1] == "RolledBack" and "Promoted" not in world.results()


@pytest.mark.parametrize("outcome, result", [("Complete", "Promoted"), ("Failed", "RolledBack")])
def test_a_check_removed_from_the_spec_while_it_runs_still_finishes_and_counts(outcome, result):
    world = canary_with(check())
    run(world, passes=2)
    assert world.rollout["check"]["name"] == "smoke"
    world.change(v("v2", []))
    run(world, passes=3, seconds=5)
    assert world.rollout["check"]["name"] == "smoke" and set(weights_seen(world)) == {0}
    world.finish_job(outcome)
    run(world, passes=12, seconds=6)
    assert world.results()[-1] == result


def test_the_promote_annotation_waits_for_a_started_step_check():
    world = canary_with(check("mid", "Step 2"))
    run(world, passes=5, seconds=1)
    assert world.rollout["check"]["name"] == "mid"
    world.annotations[PROMOTE] = "true"
    run(world, passes=3, seconds=1)
    assert "Promoted" not in world.results() and world.rollout["check"]["name"] == "mid"
    world.finish_job("Complete")
    run(world, passes=4)
    assert world.results()[-1] == "Promoted"


def test_the_running_checks_job_is_kept_even_when_the_spec_dropped_its_check():
    from modeldeploy.rollout.smoke import kept_jobs

    world = canary_with(check())
    run(world, passes=2)
    world.change(v("v2", []))
    decision = world.reconcile()
    [job] = world.created_jobs
    assert kept_jobs(decision.state, wanted=set()) == {job}
    assert jobs_to_prune(world.jobs.values(), kept_jobs(decision.state, wanted=set())) == []


def test_a_failed_check_is_a_check_failed_notification_naming_the_job_and_the_revision():
    from modeldeploy.notify import transitions

    world = canary_with(check())
    run(world, passes=2)
    job = world.finish_job("Failed")
    before = world.status
    decision = world.reconcile()
    found = {t.event: t for t in transitions(before, world.status, decision.events)}
    assert set(found) == {"CheckFailed", "RolledBack"}
    assert job in found["CheckFailed"].message and found["CheckFailed"].revision == world.rollout["revision"]


# -- the shipped example's script, against a local V2 inference endpoint ----------------


@pytest.mark.parametrize("predicted, passes", [([0, 1], True), ([0, 0], False), (None, False)])
def test_the_example_job_posts_the_v2_payload_and_compares_the_predictions(predicted, passes, tmp_path):
    import http.server
    import json
    import subprocess
    import sys
    import threading

    import yaml

    from support.cluster import REPO

    doc = yaml.safe_load((REPO / "examples" / "05-smoke-test.yaml").read_text())
    container = doc["spec"]["rollout"]["checks"][0]["job"]["template"]["template"]["spec"]["containers"][0]
    seen = []

    class Model(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            if predicted is None:
                self.send_response(500)
                self.end_headers()
                return
            body = json.dumps({"model_name": "fraud-checked", "outputs": [
                {"name": "predict", "shape": [2], "datatype": "INT64", "data": predicted}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    job = build_check_job(OWNER, check="predict", job_name="j", template=doc["spec"]["rollout"]["checks"][0]["job"]
                          ["template"], timeout_seconds=120, revision="abcdef0123", model_version="v8")
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    env["MODELDEPLOY_CANARY_URL"] = f"http://127.0.0.1:{server.server_address[1]}"  # the canary Service, here
    script = container["args"][0].replace("time.sleep(3)", "time.sleep(0)")
    try:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    finally:
        server.shutdown()
    assert (done.returncode == 0) is passes, done.stdout + done.stderr
    path, payload = seen[0]
    assert path == "/v2/models/fraud/infer"
    assert payload["inputs"][0]["shape"] == [2, 4] and len(payload["inputs"][0]["data"]) == 2
    assert "checking v8 (revision abcdef0123)" in done.stdout
    if predicted == [0, 0]:
        assert "FAIL: predicted [0, 0], expected [0, 1]" in done.stderr


def test_a_check_added_while_a_replace_promotion_has_given_the_canary_no_traffic_runs_before_it_does():
    """Capacity mode Replace promotes by giving the canary the traffic first.
    A PreRollout check the spec gains before that has begun runs first, as
    it would have had it been there at the promote annotation; the
    promotion then goes on by itself (found by the property test)."""
    def spec(checks=()):
        return spec_for("v2", replicas=4, traffic=GATEWAY, rollout={
            "steps": STEPS, "checks": list(checks), "capacity": {"mode": "Replace", "maxSurge": 1,
                                                                 "maxUnavailable": 0}})
    world = settled_world(spec_for("v1", replicas=4, traffic=GATEWAY, rollout={
        "steps": STEPS, "capacity": {"mode": "Replace", "maxSurge": 1, "maxUnavailable": 0}}))
    world.change(spec())
    run(world, passes=1, ready=False)
    world.annotations[PROMOTE] = "true"
    run(world, passes=1, ready=False)
    assert world.rollout["stage"] == "Promoting" and weights_seen(world)[-1] == 0
    world.change(spec([check()]))
    run(world, passes=4, seconds=5)
    assert world.rollout["stage"] == "Canary" and world.rollout["check"]["name"] == "smoke"
    assert set(weights_seen(world)) == {0}, "client traffic before the PreRollout check passed"
    world.finish_job("Complete")
    run(world, passes=20, seconds=5)
    assert world.results()[-1] == "Promoted"
