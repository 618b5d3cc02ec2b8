"""Imperative requests on the ModelDeployment, consumed (removed) once seen."""

from collections.abc import Mapping

from ..builders.labels import PREFIX

PROMOTE = f"{PREFIX}/promote"  # skip the remaining steps and promote the canary
ABORT = f"{PREFIX}/abort"  # roll the canary back now

REQUESTS = (PROMOTE, ABORT)


def present(annotations: Mapping[str, str] | None) -> tuple[str, ...]:
    """The requests set on the object. Every one seen is consumed, even when
    there is nothing to act on: a stale `promote` must not wave the NEXT canary
    straight through."""
    annotations = annotations or {}
    return tuple(key for key in REQUESTS if key in annotations)
