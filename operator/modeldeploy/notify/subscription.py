"""What a ModelDeployment asks to be told, in two annotations:

    modeldeploy.io/notify:         "ops-webhook,slack"   endpoints, by their name in the operator's config
    modeldeploy.io/notify-events:  "Promoted,RolledBack" only these events (default: all of them)

Annotations, not a spec field: subscribing or unsubscribing is no new
revision, so it never starts a canary.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from .events import EVENTS

NOTIFY = "modeldeploy.io/notify"
NOTIFY_EVENTS = "modeldeploy.io/notify-events"


@dataclass(frozen=True)
class Subscription:
    endpoints: tuple[str, ...]
    events: frozenset[str]
    # Names in notify-events that are no event: said in the operator's log.
    unknown_events: tuple[str, ...] = ()

    def wants(self, event: str) -> bool:
        return event in self.events


def _names(text: str | None) -> tuple[str, ...]:
    seen: list[str] = []
    for part in (text or "").replace(";", ",").split(","):
        name = part.strip()
        if name and name not in seen:
            seen.append(name)
    return tuple(seen)


def read_subscription(annotations: Mapping[str, str] | None) -> Subscription | None:
    """None when the ModelDeployment subscribes to nothing."""
    annotations = annotations or {}
    endpoints = _names(annotations.get(NOTIFY))
    if not endpoints:
        return None
    asked = _names(annotations.get(NOTIFY_EVENTS))
    if not asked:
        return Subscription(endpoints, frozenset(EVENTS))
    by_lower = {event.lower(): event for event in EVENTS}
    events = frozenset(by_lower[name.lower()] for name in asked if name.lower() in by_lower)
    unknown = tuple(name for name in asked if name.lower() not in by_lower)
    return Subscription(endpoints, events, unknown)
