"""Imperative requests on the ModelDeployment, consumed (removed) once seen.

A request's value says what it targets: `"true"` means the canary in
flight; the canary's revision (what `modeldeploy promote` writes) means only
that revision, so a request made while looking at one canary never acts on
a newer one. Any other value (`"false"`, a stale revision) is refused with
an Event saying why. Every request seen is consumed, acted on or not: a
stale `promote` must not wave the NEXT canary straight through.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from ..builders.labels import PREFIX

PROMOTE = f"{PREFIX}/promote"  # skip the remaining steps and promote the canary
ABORT = f"{PREFIX}/abort"  # roll the canary back now

REQUESTS = (PROMOTE, ABORT)
ANY_CANARY = "true"


@dataclass(frozen=True)
class Requests:
    present: tuple[str, ...] = ()  # every request set (all are consumed)
    granted: tuple[str, ...] = ()  # the ones that act on the canary in flight
    refused: tuple[tuple[str, str], ...] = ()  # (annotation, why not)

    def __contains__(self, annotation: str) -> bool:
        return annotation in self.granted


def read_requests(annotations: Mapping[str, str] | None, canary_revision: str | None, *,
                  new_revision: bool = False, done: Mapping[str, str] | None = None) -> Requests:
    """Which requests act on the canary `canary_revision` (None: none in
    flight). `new_revision`: that canary starts in this very pass, so a bare
    "true" was aimed at an earlier state and is refused. `done`: requests the
    recorded state shows were carried out ({ABORT: revision rolled back}), so
    one still present (its removal was lost) is consumed quietly."""
    annotations = annotations or {}
    present = tuple(key for key in REQUESTS if key in annotations)
    granted, refused = [], []
    for key in present:
        value = str(annotations.get(key) or "").strip()
        if canary_revision is None and key in (done or {}) and value.lower() in (ANY_CANARY, done[key]):
            continue  # carried out already; only its removal was lost
        if canary_revision is not None and value == canary_revision:
            granted.append(key)
        elif value.lower() == ANY_CANARY and canary_revision is not None and not new_revision:
            granted.append(key)
        elif value.lower() == ANY_CANARY and new_revision:
            refused.append((key, f"it arrived together with the new revision {canary_revision}; set it again "
                                 f"(to \"{canary_revision}\" to target this canary) to act on it"))
        elif value.lower() == ANY_CANARY or canary_revision is None:
            refused.append((key, "no canary is in flight"))
        else:
            target = f"revision {canary_revision}" if canary_revision else "no canary"
            refused.append((key, f"its value {value!r} is neither \"true\" nor the canary's revision "
                                 f"(in flight: {target})"))
    return Requests(present=present, granted=tuple(granted), refused=tuple(refused))


def present(annotations: Mapping[str, str] | None) -> tuple[str, ...]:
    """The requests set on the object, whatever their value."""
    annotations = annotations or {}
    return tuple(key for key in REQUESTS if key in annotations)
