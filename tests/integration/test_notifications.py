"""Rollout notifications against a local HTTP receiver: the operator runs as a
process of its own (so it can be killed and started again) with endpoints on
127.0.0.1 from a config file, as the Secret mount would give it; each
ModelDeployment subscribes with the modeldeploy.io/notify annotations.

What arrives is what a receiver answered 2xx: one arrival per transition,
none again after the operator is killed and started between transitions."""
from __future__ import annotations

from collections import Counter
from datetime import datetime

import pytest
import yaml

from support.canary import GATEWAY, model_v, wait_phase
from support.models import apply_md, get_md, is_true, model_deployment, status_view, wait_ready
from support.notify_receiver import Receiver
from support.process import MeteredOperator
from support.waiting import holds_for, wait_until

NOTIFY, NOTIFY_EVENTS = "modeldeploy.io/notify", "modeldeploy.io/notify-events"
STEPS = {"steps": [{"setWeight": 50}, {"pause": {}}]}


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def operator_with(cluster, ns, tmp_path, receiver) -> MeteredOperator:
    config = tmp_path / "notify.yaml"
    config.write_text(yaml.safe_dump({
        "endpoints": {"hook": {"url": receiver.url("/hook"), "headers": {"X-Token": "t"}},
                      "slack": {"url": receiver.url("/slack"), "format": "slack"}},
        # Quick retries, so the test sees a retried delivery in well under a second.
        "retry": {"maxAttempts": 4, "initialDelaySeconds": 0.2, "maxDelaySeconds": 1}}))
    return MeteredOperator(cluster, ns, tmp_path / "operator.log", env={"MODELDEPLOY_NOTIFY_CONFIG": str(config)})


def subscribed(doc: dict, endpoints: str, events: str | None = None) -> dict:
    doc["metadata"]["annotations"] = {NOTIFY: endpoints, **({NOTIFY_EVENTS: events} if events else {})}
    return doc


def test_each_transition_arrives_once_even_across_an_operator_restart(cluster, own_namespace, tmp_path, receiver):
    ns = own_namespace
    op = operator_with(cluster, ns, tmp_path, receiver).start()
    seen = lambda: {"hook": receiver.events("/hook"), "slack": len(receiver.at("/slack")),  # noqa: E731
                    "status": status_view(get_md(cluster, ns, "notified"))}
    try:
        doc = subscribed(model_deployment("notified", replicas=2, traffic=GATEWAY, rollout=STEPS), "hook,slack")
        apply_md(cluster, ns, doc)
        wait_ready(cluster, ns, "notified")
        apply_md(cluster, ns, model_v(doc, "v2"))
        wait_until(lambda: receiver.events("/hook") == ["CanaryStarted", "Paused"], timeout=60,
                   what="CanaryStarted, then Paused for approval", describe=seen)

        # Killed between transitions (SIGKILL: no goodbye), started again.
        op.kill()
        op.start()
        # The new process has planned the model from the status as written.
        wait_until(lambda: op.samples().get('modeldeploy_reconciles_total{result="ok"}', 0) >= 1, timeout=30,
                   what="the restarted operator's first pass", describe=lambda: op.log_text()[-1500:])
        # The Slack endpoint answers 503 twice: the Promoted message is retried.
        receiver.fail["/slack"] = 2
        cluster.kubectl("-n", ns, "annotate", "md", "notified", "modeldeploy.io/promote=true")
        wait_until(lambda: is_true(m := get_md(cluster, ns, "notified"), "Ready")
                   and m["status"]["stable"]["modelVersion"] == "v2", timeout=60, what="promoted and Ready",
                   describe=seen)
        wait_until(lambda: "Promoted" in receiver.events("/hook") and len(receiver.at("/slack")) == 3, timeout=30,
                   what="Promoted at both endpoints", describe=seen)
        # Nothing more comes while the operator keeps reconciling (a resync is every 6 s here).
        holds_for(lambda: len(receiver.arrivals) == 6, seconds=8, what="no further arrival", describe=seen)
        samples = op.samples()
    finally:
        op.kill()

    assert receiver.events("/hook") == ["CanaryStarted", "Paused", "Promoted"]
    hook = receiver.at("/hook")
    assert len({b["id"] for b in hook}) == 3
    started, paused, promoted = hook
    assert (started["revision"], started["modelVersion"]) == (paused["revision"], "v2")
    assert started["versions"] == {"stable": "v1", "canary": "v2"} and started["namespace"] == ns
    assert paused["phase"] == "Paused" and paused["rollout"]["pausedBy"] == "approval"
    assert promoted["versions"]["stable"] == "v2" and promoted["revisions"]["stable"] == started["revision"]
    assert {"name", "namespace", "versions", "revisions", "phase", "message", "decisions"} <= set(promoted)
    # From the transition (its time in the status, to the second) to the arrival.
    lags = [at - datetime.fromisoformat(b["time"]).timestamp()
            for (path, b), at in zip(receiver.arrivals, receiver.received_at) if path == "/hook"]
    print(f"transition -> arrival at /hook: {', '.join(f'{lag:.2f}s' for lag in lags)}")
    assert all(-0.1 < lag < 3 for lag in lags), lags

    slack = [b["text"] for b in receiver.at("/slack")]
    assert [t.split("*")[1] for t in slack] == ["CanaryStarted", "Paused", "Promoted"], slack
    assert f"`{ns}/notified` v2" in slack[2]
    # The restarted process retried the two 503s and counted them.
    assert receiver.refused == ["/slack", "/slack"]
    assert samples['modeldeploy_notification_attempt_failures_total{endpoint="slack",reason="http-503"}'] == 2
    assert samples['modeldeploy_notifications_total{endpoint="slack",event="Promoted",result="delivered"}'] == 1
    assert samples['modeldeploy_notifications_total{endpoint="hook",event="Promoted",result="delivered"}'] == 1


def test_subscribed_events_only_with_the_revision_each_is_about(cluster, own_namespace, tmp_path, receiver):
    """Aborted (a canary superseded), RolledBack (the abort annotation) and
    Stalled (the progress deadline), each for what it concerns; the events
    not asked for never arrive."""
    ns = own_namespace
    op = operator_with(cluster, ns, tmp_path, receiver).start()
    seen = lambda: {"hook": [(b["name"], b["event"], b["modelVersion"]) for b in receiver.at("/hook")],  # noqa: E731
                    "status": status_view(get_md(cluster, ns, "picky"))}
    try:
        doc = subscribed(model_deployment("picky", replicas=2, traffic=GATEWAY, rollout=STEPS), "hook",
                         "Aborted,RolledBack")
        apply_md(cluster, ns, doc)
        hung = subscribed(model_deployment("hung", replicas=1, behavior="never-ready",
                                           rollout={"progressDeadlineSeconds": 10}), "hook", "Stalled")
        apply_md(cluster, ns, hung)
        wait_ready(cluster, ns, "picky")
        apply_md(cluster, ns, model_v(doc, "v2"))
        wait_phase(cluster, ns, "picky", "Paused")
        apply_md(cluster, ns, model_v(doc, "v3"))  # supersedes the v2 canary
        wait_until(lambda: (get_md(cluster, ns, "picky")["status"].get("rollout") or {}).get("modelVersion") == "v3",
                   timeout=30, what="the v3 canary", describe=seen)
        cluster.kubectl("-n", ns, "annotate", "md", "picky", "modeldeploy.io/abort=true")
        wait_phase(cluster, ns, "picky", "RolledBack", timeout=30)
        wait_until(lambda: len(receiver.at("/hook")) == 3, timeout=60, what="three arrivals", describe=seen)
        holds_for(lambda: len(receiver.at("/hook")) == 3, seconds=8, what="no further arrival", describe=seen)
    finally:
        op.kill()
    got = sorted((b["name"], b["event"], b["modelVersion"]) for b in receiver.at("/hook"))
    assert got == [("hung", "Stalled", "v1"), ("picky", "Aborted", "v2"), ("picky", "RolledBack", "v3")], got
    stalled = next(b for b in receiver.at("/hook") if b["event"] == "Stalled")
    assert stalled["reason"] == "ProgressDeadlineExceeded" and "0/1 replicas ready" in stalled["message"]
    assert Counter(b["id"] for b in receiver.at("/hook")).most_common(1)[0][1] == 1
