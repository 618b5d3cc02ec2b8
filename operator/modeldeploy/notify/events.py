"""Which rollout transitions one reconcile pass made, from what it announces
(the rollout machine's Events) and from the status before and after it.

    CanaryStarted  the machine's CanaryStarted Event
    Paused         status.rollout.pausedBy turns `approval` at a step (an
                   open-ended pause step now waits for approvedVersion or
                   the promote annotation); pauses held by analysis are not
                   an approval wait
    Promoted       the machine's Promoted Event
    RolledBack     the machine's RolledBack Event
    Aborted        the machine's Aborted Event (a canary superseded by a
                   newer revision, or the spec put back to stable)
    Stalled        the Stalled condition turns True, or True for another
                   reason; not for reason RolledBack (that is the rollback's
                   own Stalled, notified as RolledBack)
    CheckFailed    the machine's CheckFailed Event: a smoke-test check's Job
                   (spec.rollout.checks) failed or timed out; the message
                   names the check and the Job (rollout/smoke.py)

Everything here is derived from the status the pass writes, so a transition
is found once: the next pass, in this process or in one started after a
restart, reads the written status as its `previous` and finds nothing new.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..conditions import STALLED as STALLED_CONDITION
from ..conditions import TRUE
from ..rollout.machine import ABORTED, CANARY_STARTED, PROMOTED, ROLLED_BACK
from ..rollout.smoke import CHECK_FAILED

# The machine's Event reasons, under the same names.
PAUSED = "Paused"
STALLED = "Stalled"
EVENTS = (CANARY_STARTED, PAUSED, PROMOTED, ROLLED_BACK, ABORTED, STALLED, CHECK_FAILED)

# Kubernetes Event reasons forwarded as notifications of the same name.
FROM_EVENTS = (CANARY_STARTED, PROMOTED, ROLLED_BACK, ABORTED, CHECK_FAILED)
# History results that name the revision a notification is about.
FROM_HISTORY = (PROMOTED, ROLLED_BACK, ABORTED)
APPROVAL = "approval"


class EventLike(Protocol):
    reason: str
    message: str


@dataclass(frozen=True)
class Transition:
    event: str  # one of EVENTS
    reason: str  # the Kubernetes Event or condition reason behind it
    message: str
    # The revision and model version it is about, and when it happened, as
    # the status records them: together with the object they identify it.
    revision: str | None
    model_version: str | None
    time: str | None


def transitions(previous: Mapping[str, Any] | None, status: Mapping[str, Any] | None,
                events: Iterable[EventLike]) -> tuple[Transition, ...]:
    """The transitions from `previous` to `status` (the status the pass
    writes; None or the same: nothing written), in the order they happened."""
    previous, status = previous or {}, status or previous or {}
    events = tuple(events)
    new_history = _new_history(previous, status)
    rollout = status.get("rollout") or {}
    found: list[Transition] = []
    for event in events:
        if event.reason not in FROM_EVENTS:
            continue
        if event.reason in FROM_HISTORY:
            entry = new_history.pop(event.reason, None) or {}
            found.append(Transition(event.reason, event.reason, event.message, entry.get("revision"),
                                    entry.get("modelVersion"), entry.get("time")))
        else:
            found.append(Transition(event.reason, event.reason, event.message, rollout.get("revision"),
                                    rollout.get("modelVersion"), rollout.get("stepStartedAt")))
    paused = _approval_wait(status)
    if paused is not None and paused != _approval_wait(previous):
        found.append(Transition(PAUSED, APPROVAL, rollout.get("pausedReason") or "waiting for approval",
                                rollout.get("revision"), rollout.get("modelVersion"), rollout.get("stepStartedAt")))
    stalled = _stalled(status)
    if stalled is not None and stalled["reason"] != ROLLED_BACK and (
            _stalled(previous) or {}).get("reason") != stalled["reason"]:
        subject = rollout if rollout.get("stage") in ("Canary", "Promoting") else (status.get("stable") or {})
        found.append(Transition(STALLED, stalled["reason"], stalled.get("message", ""), subject.get("revision"),
                                subject.get("modelVersion"), stalled.get("lastTransitionTime")))
    return tuple(found)


def _approval_wait(status: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """(revision, step) of the pause step waiting for approval, if one is."""
    rollout = status.get("rollout") or {}
    if rollout.get("pausedBy") != APPROVAL:
        return None
    return rollout.get("revision"), rollout.get("step")


def _stalled(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == STALLED_CONDITION and cond.get("status") == TRUE:
            return cond
    return None


def _new_history(previous: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The history entries this pass added, by result (the last of each)."""
    before = [dict(e) for e in previous.get("history") or ()]
    return {entry["result"]: entry for entry in status.get("history") or () if dict(entry) not in before}
