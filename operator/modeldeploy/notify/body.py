"""What is POSTed: a JSON event, or a Slack-compatible `{"text": ...}`."""

from collections.abc import Mapping
from typing import Any

from .events import Transition

LAST_DECISIONS = 5
SCHEMA = "modeldeploy.io/notification/v1"


def notification(transition: Transition, *, namespace: str, name: str, uid: str | None,
                 status: Mapping[str, Any]) -> dict[str, Any]:
    """The event as JSON: what happened, to which revision, and where the
    ModelDeployment stands now (the status the pass wrote). `id` is stable
    for a transition, so a receiver can drop a redelivery."""
    rollout = status.get("rollout") or {}
    stable = status.get("stable") or {}
    canary = status.get("canary") or {}
    in_flight = rollout.get("stage") in ("Canary", "Promoting", "Queued", "RolledBack")
    return {
        "schema": SCHEMA,
        "id": "/".join((uid or f"{namespace}.{name}", transition.event, transition.revision or "-",
                        transition.time or "-")),
        "event": transition.event,
        "reason": transition.reason,
        "time": transition.time,
        "namespace": namespace,
        "name": name,
        "phase": status.get("phase"),
        "message": transition.message,
        "revision": transition.revision,
        "modelVersion": transition.model_version,
        "versions": {"stable": stable.get("modelVersion"),
                     "canary": rollout.get("modelVersion") if in_flight else canary.get("modelVersion")},
        "revisions": {"stable": stable.get("revision"),
                      "canary": rollout.get("revision") if in_flight else canary.get("revision")},
        "rollout": {key: rollout.get(key) for key in ("stage", "step", "totalSteps", "weight", "pausedBy")
                    if rollout.get(key) is not None},
        "traffic": status.get("traffic"),
        "decisions": list((rollout.get("decisions") or [])[-LAST_DECISIONS:]),
    }


EMOJI = {"CanaryStarted": ":hatching_chick:", "Paused": ":double_vertical_bar:", "Promoted": ":white_check_mark:",
         "RolledBack": ":rewind:", "Aborted": ":no_entry_sign:", "Stalled": ":warning:", "CheckFailed": ":x:"}


def slack_body(body: Mapping[str, Any]) -> dict[str, str]:
    """Slack incoming-webhook text (mrkdwn); Mattermost, Rocket.Chat and
    Teams' Slack-compatible webhooks take it too."""
    versions, revisions = body["versions"], body["revisions"]
    lines = [f"{EMOJI.get(body['event'], '')} *{body['event']}* `{body['namespace']}/{body['name']}`"
             f" {body.get('modelVersion') or ''} (revision {body.get('revision') or '-'})".replace("  ", " ").strip(),
             _escape(body.get("message") or ""),
             f"stable {versions.get('stable') or '-'} ({revisions.get('stable') or '-'})"
             + (f" · canary {versions['canary']} ({revisions.get('canary') or '-'})" if versions.get("canary") else "")
             + f" · phase {body.get('phase') or '-'}"]
    decisions = body.get("decisions") or []
    if decisions:
        last = decisions[-1]
        lines.append(f"last decision: {last.get('metric')} {last.get('verdict')} -> {last.get('action')}")
    return {"text": "\n".join(line for line in lines if line)}


def json_body(body: Mapping[str, Any], fmt: str) -> Mapping[str, Any]:
    return slack_body(body) if fmt == "slack" else body


def _escape(text: str) -> str:
    # Slack's three control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
