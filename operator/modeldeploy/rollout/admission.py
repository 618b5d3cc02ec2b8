"""How many canaries may run at once (`--max-concurrent-canaries N`).

A change applied to hundreds of ModelDeployments at once (a new runtime
image, a shared base model) must not start hundreds of GPU canaries
(Flagger #1069). A ModelDeployment whose new revision would start a canary
while N are in flight waits, stable serving, in a line ordered by when it
started waiting (then by namespace/name), and says its place in the status.

The controller gathers the line from its watch cache and from the passes it
just planned (CanarySlots); deciding who goes is this pure function's."""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CanarySlots:
    limit: int
    in_flight: frozenset[str]  # "namespace/name" of every ModelDeployment with a canary in flight
    queued: tuple[tuple[datetime, str], ...]  # (waiting since, "namespace/name") of every one waiting


@dataclass(frozen=True)
class Admission:
    admitted: bool
    position: int = 0  # 1 = next in line
    waiting: int = 0  # how many wait, this one included


def admit(slots: CanarySlots, key: str, since: datetime) -> Admission:
    """May `key`, waiting since `since`, start its canary now? One that
    holds a slot already (a new revision replacing its canary in flight)
    keeps it."""
    if key in slots.in_flight:
        return Admission(True)
    line = sorted({entry for entry in slots.queued if entry[1] != key} | {(since, key)})
    position = line.index((since, key)) + 1
    free = slots.limit - len(slots.in_flight)
    return Admission(position <= free, position, len(line))
