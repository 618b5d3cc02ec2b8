"""Rollout notifications: which transitions a pass made (modeldeploy.notify),
what is sent, and delivery (kube/notifier.py) against a fake transport and
a fake clock -- no network, no sleeping."""
import asyncio
import copy
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modeldeploy import metrics
from modeldeploy.kube.notifier import Notifier
from modeldeploy.notify import (EVENTS, NOTIFY, NOTIFY_EVENTS, ConfigError, RetryPolicy, backoff_delays,
                                load_config, notification, read_subscription, slack_body, transitions)
from modeldeploy.rollout.decision import Event

# -- statuses as the operator writes them ------------------------------------------------


def status(stage="Stable", *, revision="r2", version="v2", step=0, paused_by=None, paused_reason=None,
           history=(), stalled=None, stable=("r1", "v1"), started="2026-01-01T00:00:00Z", decisions=()):
    conditions = [{"type": "Ready", "status": "False", "reason": "CanaryInProgress", "message": "",
                   "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    if stalled:
        conditions.append({"type": "Stalled", "status": "True", "reason": stalled[0], "message": stalled[1],
                           "lastTransitionTime": stalled[2] if len(stalled) > 2 else "2026-01-01T00:05:00Z"})
    else:
        conditions.append({"type": "Stalled", "status": "False", "reason": "NotStalled", "message": "",
                           "lastTransitionTime": "2026-01-01T00:00:00Z"})
    rollout = {"stage": stage, "revision": revision, "modelVersion": version, "step": step, "totalSteps": 2,
               "stepStartedAt": started, "weight": 50, "decisions": list(decisions)}
    if paused_by:
        rollout.update(pausedBy=paused_by, pausedReason=paused_reason or "waiting")
    return {"phase": "Canary", "conditions": conditions, "stable": {"revision": stable[0], "modelVersion": stable[1]},
            "rollout": rollout, "history": [dict(h) for h in history], "traffic": {"stable": 50, "canary": 50}}


def entry(revision, version, result, time="2026-01-01T00:10:00Z"):
    return {"revision": revision, "modelVersion": version, "uri": f"s3://m/{version}", "result": result, "time": time}


DEPLOYED = entry("r1", "v1", "Deployed", "2025-12-31T00:00:00Z")


def events_of(found):
    return [t.event for t in found]


# -- which transitions -----------------------------------------------------------------------


def test_canary_started_comes_from_the_machines_event_with_the_new_canary_as_subject():
    before = status("Stable", revision="r1", version="v1", history=[DEPLOYED])
    after = status("Canary", step=1, history=[DEPLOYED], started="2026-01-01T00:01:00Z")
    (found,) = transitions(before, after, [Event("Normal", "CanaryStarted", "trying out v2")])
    assert (found.event, found.revision, found.model_version, found.time) == (
        "CanaryStarted", "r2", "v2", "2026-01-01T00:01:00Z")
    assert found.message == "trying out v2"


def test_an_aborted_canary_superseded_in_the_same_pass_is_named_by_its_own_history_entry():
    before = status("Canary", revision="r2", version="v2", history=[DEPLOYED])
    after = status("Canary", revision="r3", version="v3", history=[DEPLOYED, entry("r2", "v2", "Aborted")])
    found = transitions(before, after, [Event("Normal", "Aborted", "superseded"),
                                        Event("Normal", "CanaryStarted", "trying out v3")])
    assert [(t.event, t.revision) for t in found] == [("Aborted", "r2"), ("CanaryStarted", "r3")]


@pytest.mark.parametrize("result", ["Promoted", "RolledBack"])
def test_promoted_and_rolled_back_name_the_canary_and_the_time_history_records(result):
    before = status("Canary", step=2, history=[DEPLOYED])
    after = status("Stable" if result == "Promoted" else "RolledBack", history=[DEPLOYED, entry("r2", "v2", result)],
                   stalled=("RolledBack", "rolled back") if result == "RolledBack" else None)
    found = transitions(before, after, [Event("Normal", result, f"{result} v2")])
    # A rollback's own Stalled condition is no second notification.
    assert [(t.event, t.revision, t.time) for t in found] == [(result, "r2", "2026-01-01T00:10:00Z")]


def test_paused_fires_when_an_approval_wait_begins_and_not_on_the_passes_that_find_it_waiting():
    canary = status("Canary", step=1)
    waiting = status("Canary", step=1, paused_by="approval", paused_reason="waiting for approval of v2")
    (found,) = transitions(canary, waiting, [])
    assert (found.event, found.message, found.revision) == ("Paused", "waiting for approval of v2", "r2")
    assert transitions(waiting, waiting, []) == ()
    assert transitions(waiting, None, []) == ()  # nothing written
    # A second open pause later in the steps is another wait.
    second = status("Canary", step=3, paused_by="approval")
    assert events_of(transitions(waiting, second, [])) == ["Paused"]
    # The same step of another revision too.
    other = status("Canary", step=1, revision="r3", paused_by="approval")
    assert events_of(transitions(waiting, other, [])) == ["Paused"]


def test_a_pause_held_by_analysis_is_not_an_approval_wait():
    assert transitions(status("Canary", step=1), status("Canary", step=1, paused_by="analysis"), []) == ()


def test_stalled_fires_when_the_condition_turns_true_or_changes_reason_only():
    ok = status("Stable")
    crash = status("Stable", stalled=("PodsCrashLooping", "pod x restarts"))
    (found,) = transitions(ok, crash, [Event("Warning", "PodsCrashLooping", "pod x restarts")])
    assert (found.event, found.reason, found.revision, found.time) == (
        "Stalled", "PodsCrashLooping", "r1", "2026-01-01T00:05:00Z")
    assert transitions(crash, status("Stable", stalled=("PodsCrashLooping", "other message")), []) == ()
    assert events_of(transitions(crash, status("Stable", stalled=("ImagePullFailed", "no image")), [])) == ["Stalled"]
    # During a canary the canary is the subject.
    canary = status("Canary", stalled=("ProgressDeadlineExceeded", "late"))
    assert transitions(status("Canary"), canary, [])[0].revision == "r2"


def test_other_events_are_not_notifications_and_check_failed_is_forwarded_once_checks_emit_it():
    same = status("Canary", step=1)
    assert transitions(same, same, [Event("Warning", "RequestIgnored", "x"), Event("Normal", "Promoting", "y"),
                                    Event("Normal", "CanaryQueued", "z")]) == ()
    assert events_of(transitions(same, same, [Event("Warning", "CheckFailed", "smoke test failed")])) == ["CheckFailed"]
    assert set(EVENTS) == {"CanaryStarted", "Paused", "Promoted", "RolledBack", "Aborted", "Stalled", "CheckFailed"}


def test_the_pass_after_one_that_recorded_a_transition_finds_nothing_again():
    """What makes a restart send nothing twice: the next pass, in any process,
    plans from the written status, which already holds the transition."""
    before = status("Canary", step=1, history=[DEPLOYED])
    after = status("RolledBack", history=[DEPLOYED, entry("r2", "v2", "RolledBack")], paused_by=None,
                   stalled=("RolledBack", "bad"))
    assert transitions(before, after, [Event("Warning", "RolledBack", "bad")])
    assert transitions(after, after, []) == ()
    assert transitions(after, copy.deepcopy(after), []) == ()


# -- subscription ------------------------------------------------------------------------------


def test_subscription_annotations():
    assert read_subscription({}) is None
    assert read_subscription({NOTIFY: " , "}) is None
    every = read_subscription({NOTIFY: "ops-webhook, slack,ops-webhook"})
    assert every.endpoints == ("ops-webhook", "slack") and every.events == frozenset(EVENTS)
    some = read_subscription({NOTIFY: "slack", NOTIFY_EVENTS: "promoted, RolledBack,Nope"})
    assert some.events == {"Promoted", "RolledBack"} and some.unknown_events == ("Nope",)
    assert some.wants("Promoted") and not some.wants("CanaryStarted")


# -- the bodies -------------------------------------------------------------------------------------


DECISIONS = [{"time": f"2026-01-01T00:0{i}:00Z", "metric": "error-rate", "verdict": "Pass", "action": "continue"}
             for i in range(8)]


def test_the_json_body_carries_what_the_issue_asks_and_a_stable_id():
    after = status("Canary", step=1, paused_by="approval", paused_reason="approve v2 <please>", decisions=DECISIONS)
    (paused,) = transitions(status("Canary", step=1), after, [])
    body = notification(paused, namespace="ml", name="fraud", uid="u-1", status=after)
    assert body["event"] == "Paused" and body["namespace"] == "ml" and body["name"] == "fraud"
    assert body["versions"] == {"stable": "v1", "canary": "v2"}
    assert body["revisions"] == {"stable": "r1", "canary": "r2"}
    assert body["phase"] == "Canary" and body["message"] == "approve v2 <please>"
    assert body["decisions"] == DECISIONS[-5:]
    assert body["id"] == "u-1/Paused/r2/2026-01-01T00:00:00Z"
    assert notification(paused, namespace="ml", name="fraud", uid="u-1", status=copy.deepcopy(after))["id"] == body["id"]
    json.dumps(body)  # plain JSON


def test_the_slack_body_is_one_text_field_with_the_essentials_escaped():
    after = status("Canary", step=1, paused_by="approval", paused_reason="approve v2 <please> & go",
                   decisions=DECISIONS)
    (paused,) = transitions(status("Canary", step=1), after, [])
    text = slack_body(notification(paused, namespace="ml", name="fraud", uid="u", status=after))
    assert set(text) == {"text"}
    lines = text["text"].splitlines()
    assert "*Paused* `ml/fraud` v2 (revision r2)" in lines[0]
    assert lines[1] == "approve v2 &lt;please&gt; &amp; go"
    assert lines[2] == "stable v1 (r1) · canary v2 (r2) · phase Canary"
    assert lines[3] == "last decision: error-rate Pass -> continue"


# -- config and backoff ------------------------------------------------------------------------------------


def test_config_file_with_defaults_and_errors():
    config = load_config("""
endpoints:
  ops-webhook: {url: "https://hooks.example.com/x", headers: {Authorization: "Bearer t"}}
  slack: {url: "http://127.0.0.1:9/y", format: slack, timeoutSeconds: 2}
retry: {maxAttempts: 3, initialDelaySeconds: 0.5}
""")
    assert config.endpoints["ops-webhook"].format == "json"
    assert config.endpoints["ops-webhook"].headers == {"Authorization": "Bearer t"}
    assert config.endpoints["slack"].timeout_seconds == 2
    assert backoff_delays(config.retry) == (0.5, 1.0)
    assert load_config('{"endpoints": {}}').endpoints == {}
    for bad in ("endpoints: {a: {url: ftp://x}}", "endpoints: {a: {url: http://x, format: xml}}",
                "endpoints: {a: {url: http://x, typo: 1}}", "retry: {maxAttempts: 0}", "endpoints: [", "- a"):
        with pytest.raises(ConfigError):
            load_config(bad)


@given(attempts=st.integers(1, 20), initial=st.floats(0, 300), cap=st.floats(0, 3600))
def test_backoff_is_bounded_and_never_shrinks(attempts, initial, cap):
    delays = backoff_delays(RetryPolicy(max_attempts=attempts, initial_delay_seconds=initial, max_delay_seconds=cap))
    assert len(delays) == attempts - 1
    assert all(0 <= d <= cap for d in delays)
    assert list(delays) == sorted(delays)
    assert sum(delays) <= cap * (attempts - 1) * (1 + 1e-9)


# -- delivery --------------------------------------------------------------------------------------------


class FakeTransport:
    """Answers each POST to a URL from its script (an int status, an exception
    to raise, or "hang"); records every attempt."""

    def __init__(self, **scripts):
        self.scripts = {url: list(answers) for url, answers in scripts.items()}
        self.attempts: list[tuple[str, dict, dict]] = []
        self.hang = asyncio.Event()

    async def __call__(self, url, payload, headers, timeout):
        self.attempts.append((url, json.loads(payload), dict(headers)))
        answer = self.scripts[url].pop(0) if self.scripts[url] else 200
        if answer == "hang":
            await self.hang.wait()
        if isinstance(answer, BaseException):
            raise answer
        return answer


class FakeClock:
    def __init__(self):
        self.slept: list[float] = []

    async def sleep(self, seconds):
        self.slept.append(seconds)


CONFIG = """
endpoints:
  hook: {url: "http://hook/", headers: {X-Token: "t"}, timeoutSeconds: 0.2}
  slack: {url: "http://slack/", format: slack}
retry: {maxAttempts: 4, initialDelaySeconds: 1, maxDelaySeconds: 3}
queueSize: 2
"""


def body(event="Promoted", n=0):
    return {"id": f"u/{event}/r{n}/t", "event": event, "namespace": "ml", "name": "fraud", "versions": {},
            "revisions": {}, "phase": "Ready", "message": "m", "decisions": []}


def count(counter, *labels) -> float:
    return counter.labels(*labels)._value.get()


def deliver(transport, clock, scenario, config=CONFIG):
    async def main():
        notifier = Notifier(load_config(config), transport=transport, sleep=clock.sleep)
        await notifier.start()
        try:
            await asyncio.wait_for(scenario(notifier), timeout=5)
        finally:
            await notifier.stop(grace=0)
    asyncio.run(main())


def test_a_failing_endpoint_is_retried_with_backoff_until_it_answers_and_each_failure_is_counted():
    transport, clock = FakeTransport(**{"http://hook/": [500, ConnectionError("refused"), 503, 200]}), FakeClock()
    failures = {r: count(metrics.NOTIFICATION_ATTEMPT_FAILURES, "hook", r) for r in ("http-500", "ConnectionError")}
    delivered = count(metrics.NOTIFICATIONS, "hook", "Promoted", "delivered")

    async def scenario(notifier):
        assert notifier.submit("hook", body())
        await notifier.drain()
    deliver(transport, clock, scenario)
    assert len(transport.attempts) == 4
    assert clock.slept == [1, 2, 3]  # doubling, capped at maxDelaySeconds
    assert transport.attempts[0][2] == {"Content-Type": "application/json", "X-Token": "t"}
    assert count(metrics.NOTIFICATION_ATTEMPT_FAILURES, "hook", "http-500") == failures["http-500"] + 1
    assert count(metrics.NOTIFICATION_ATTEMPT_FAILURES, "hook", "ConnectionError") == failures["ConnectionError"] + 1
    assert count(metrics.NOTIFICATIONS, "hook", "Promoted", "delivered") == delivered + 1


def test_delivery_gives_up_after_the_bounded_attempts_and_counts_the_failure():
    transport, clock = FakeTransport(**{"http://hook/": [500] * 10}), FakeClock()
    failed = count(metrics.NOTIFICATIONS, "hook", "RolledBack", "failed")

    async def scenario(notifier):
        notifier.submit("hook", body("RolledBack"))
        await notifier.drain()
    deliver(transport, clock, scenario)
    assert len(transport.attempts) == 4 and clock.slept == [1, 2, 3]
    assert count(metrics.NOTIFICATIONS, "hook", "RolledBack", "failed") == failed + 1


def test_a_4xx_is_not_retried_but_429_is():
    transport, clock = FakeTransport(**{"http://hook/": [404], "http://slack/": [429, 200]}), FakeClock()

    async def scenario(notifier):
        notifier.submit("hook", body())
        notifier.submit("slack", body())
        await notifier.drain()
    deliver(transport, clock, scenario)
    assert [a[0] for a in transport.attempts].count("http://hook/") == 1
    assert [a[0] for a in transport.attempts].count("http://slack/") == 2


def test_an_attempt_that_does_not_answer_times_out():
    transport, clock = FakeTransport(**{"http://hook/": ["hang", 200]}), FakeClock()
    timeouts = count(metrics.NOTIFICATION_ATTEMPT_FAILURES, "hook", "timeout")

    async def scenario(notifier):
        notifier.submit("hook", body())
        await notifier.drain()
    deliver(transport, clock, scenario)
    assert len(transport.attempts) == 2
    assert count(metrics.NOTIFICATION_ATTEMPT_FAILURES, "hook", "timeout") == timeouts + 1


def test_submit_never_waits_a_hung_endpoint_delays_only_its_own_queue_and_a_full_queue_drops():
    transport, clock = FakeTransport(**{"http://hook/": ["hang"] * 10, "http://slack/": []}), FakeClock()
    dropped = count(metrics.NOTIFICATIONS, "hook", "Aborted", "dropped")

    async def scenario(notifier):
        # submit() is no coroutine: the reconcile cannot be made to wait on it.
        assert not asyncio.iscoroutinefunction(notifier.submit)
        assert notifier.submit("hook", body("Aborted", 1))
        while not transport.attempts:  # the worker took it and hangs on it
            await asyncio.sleep(0)
        assert notifier.submit("hook", body("Aborted", 2)) and notifier.submit("hook", body("Aborted", 3))
        assert not notifier.submit("hook", body("Aborted", 4))  # queueSize 2: dropped
        assert not notifier.submit("nowhere", body())
        assert notifier.submit("slack", body("Promoted"))
        while not any(a[0] == "http://slack/" for a in transport.attempts):
            await asyncio.sleep(0)
    deliver(transport, clock, scenario, config=CONFIG.replace("timeoutSeconds: 0.2", "timeoutSeconds: 60"))
    slack = [a for a in transport.attempts if a[0] == "http://slack/"]
    assert len(slack) == 1 and set(slack[0][1]) == {"text"}  # the Slack format
    # Dropped: the one the full queue refused, and the two still queued at stop().
    assert count(metrics.NOTIFICATIONS, "hook", "Aborted", "dropped") == dropped + 3


# -- through the controller ------------------------------------------------------------------------------


class RecordingNotifier:
    endpoints = ("hook", "slack")

    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    def submit(self, endpoint, body):
        self.sent.append((endpoint, body))
        return True


def test_the_controller_notifies_each_transition_once_after_its_status_write_and_not_again_after_a_restart(caplog):
    from test_controller import KEY, PROMOTE, FakeQueue, Harness, api_error

    from modeldeploy.controller import Controller
    from modeldeploy.settings import OperatorSettings

    async def main():
        h = Harness()
        try:
            h.controller.notifier = recorder = RecordingNotifier()
            h.annotate(NOTIFY, "hook,unknown-endpoint")
            await h.settle()
            assert recorder.sent == []  # the first revision goes straight to stable: no transition asked for
            h.edit(version="v8")
            await h.settle()
            assert [b["event"] for _, b in recorder.sent] == ["CanaryStarted", "Paused"]
            assert {e for e, _ in recorder.sent} == {"hook"}  # the unknown endpoint is only logged
            assert "not in the operator's config (it has hook, slack): unknown-endpoint" in caplog.text

            # A restart: a new controller reads the written status; nothing is sent again.
            restarted = Controller(OperatorSettings(), kube=h.kube, notifier=RecordingNotifier())
            restarted.queue = FakeQueue()
            h.controller = restarted
            h.sync()
            await h.settle()
            assert restarted.notifier.sent == []

            # A lost status write announces nothing; the retry that writes it does, once.
            h.annotate(PROMOTE, "true")
            h.kube.fail["apply_status"] = lambda s: api_error(500)
            with pytest.raises(Exception):
                await h.controller._reconcile(KEY)
            assert restarted.notifier.sent == []
            del h.kube.fail["apply_status"]
            await h.settle()
            assert [b["event"] for _, b in restarted.notifier.sent] == ["Promoted"]
            promoted = restarted.notifier.sent[0][1]
            assert promoted["versions"]["stable"] == "v8" and promoted["modelVersion"] == "v8"
        finally:
            h.kube.close()
    asyncio.run(main())


@pytest.mark.parametrize("text", [None, "endpoints: {a: {url: ftp://x}}"], ids=["missing", "invalid"])
def test_run_refuses_a_notification_config_it_cannot_read_before_starting(text, tmp_path, monkeypatch, capsys):
    """kopf retries a failing startup handler for ever: `run` checks first."""
    from modeldeploy.cli.main import main

    path = tmp_path / "notify.yaml"
    if text is not None:
        path.write_text(text)
    monkeypatch.setenv("MODELDEPLOY_NOTIFY_CONFIG", "")  # restored afterwards: `run` sets it
    assert main(["run", "--notify-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("modeldeploy: notifications: ") and ("ftp://x" in err or "No such file" in err), err


def test_a_notifier_that_raises_never_fails_the_pass():
    from test_controller import PROMOTE, Harness

    class Broken(RecordingNotifier):
        def submit(self, endpoint, body):
            raise RuntimeError("boom")

    async def main():
        h = Harness()
        try:
            h.controller.notifier = Broken()
            h.annotate(NOTIFY, "hook")
            await h.settle()
            h.edit(version="v8")
            await h.settle()
            h.annotate(PROMOTE, "true")
            await h.settle()  # raises if a pass fails
            assert h.status["stable"]["modelVersion"] == "v8"
            assert PROMOTE not in h.kube.model["metadata"]["annotations"]
            assert [c[1] for c in h.kube.calls if c[0] == "event"].count("Promoted") == 1
        finally:
            h.kube.close()
    asyncio.run(main())
