"""`spec.rollout.capacity.mode: Replace`: how many pods each role runs, pass
by pass, so that a model needing every GPU the cluster has can still roll
out (issue 11).

In mode Surge the canary's pods come on top of stable's full count. In mode
Replace the two roles share one budget:

    pods in all (stable + canary, terminating ones too) <= replicas + maxSurge
    ready pods in all                                    >= replicas - maxUnavailable

and traffic only ever goes to ready pods that can carry it: a role taking w%
of the traffic has at least ceil(floor * w / 100) ready pods (at least one),
`floor` being replicas - maxUnavailable, the least ready capacity the user
accepts. So:

* forward (a step's weight rising): stable gives up a pod only while the
  ready pods left, with the canary's ready pods, still cover the floor and
  stable's current share; the canary grows into the room that frees. The
  machine raises the weight only once the canary's ready pods carry it
  (`carriers`).
* backward (a rollback, an abort, a promotion handing back to the new
  stable): stable grows first, as far as the budget lets it; traffic moves
  to it as its ready pods can carry it; only then do canary pods go, never
  below what the traffic still on the canary and the floor need. A canary
  pod shown failing carries nothing and goes first (RolePods.ready_at_most;
  Argo Rollouts #3020 and #4035: never all traffic onto a shrunken or
  not-yet-ready stable).

Pure: counts in, counts out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    replicas: int  # R: spec.replicas
    surge: int  # S: pods above R at most
    unavailable: int  # U: ready pods below R at most

    @property
    def total(self) -> int:
        return self.replicas + self.surge

    @property
    def floor(self) -> int:
        return max(0, self.replicas - self.unavailable)


@dataclass(frozen=True)
class RolePods:
    """One role as observed: its Deployment's replicas, the pods that exist
    (any revision, terminating ones too: they hold their GPUs until gone)
    and the ready ones."""

    replicas: int = 0
    pods: int = 0
    ready: int = 0  # ready for sure: what the pods and their Deployment both say
    # Ready by either account (the pods' or the Deployment's): before taking
    # a pod away as one that carries nothing, both must say it is not ready.
    ready_at_most: int | None = None

    @property
    def maybe_ready(self) -> int:
        return self.ready if self.ready_at_most is None else max(self.ready, self.ready_at_most)

    @property
    def held(self) -> int:
        return max(self.replicas, self.pods)


@dataclass(frozen=True)
class Layout:
    stable: int  # replicas for the stable Deployment
    canary: int  # replicas for the canary Deployment
    weight: int  # the canary's percent of traffic to write


def carriers(floor: int, share: int) -> int:
    """Ready pods a role needs to take `share` percent of the traffic: its
    share of the floor, to the nearest pod (two complementary shares then
    never need more than floor + 1 pods between them, so a walk always has
    room: maxSurge and maxUnavailable are never both 0), and never none."""
    if share <= 0:
        return 0
    return max(1, (floor * share + 50) // 100)


def most_share(floor: int, ready: int) -> int:
    """The largest share `ready` pods carry (carriers(floor, share) <= ready)."""
    return max((share for share in range(101) if carriers(floor, share) <= ready), default=0)


def canary_pods_for(budget: Budget, weight: int, *, weighted: bool) -> int:
    """The canary's size at `weight` once the step is reached: its share of
    the replicas (a weighted route needs one pod to be checked before any
    traffic reaches it; the replicas provider needs none at 0%)."""
    if weighted:
        return min(budget.replicas, max(1, math.ceil(budget.replicas * weight / 100)))
    if weight <= 0:
        return 0
    return min(budget.replicas, max(1, round(budget.replicas * weight / 100)))


def stable_goal(budget: Budget, canary_target: int) -> int:
    """Stable's size next to a canary of `canary_target` pods: what the
    budget leaves, none next to a canary of full size (a promotion)."""
    if canary_target >= budget.replicas:
        return 0
    return min(budget.replicas, budget.total - canary_target)


def forward(budget: Budget, stable: RolePods, canary: RolePods, *, carried: int, weight: int,
            canary_target: int, weighted: bool = True) -> Layout:
    """The canary grows toward `canary_target` pods and `weight` (already
    allowed by `carriers`); `carried` is the canary's share the traffic has
    now (the route read back, or the ready-pod ratio)."""
    # A route keeps sending stable its share until it is rewritten: the most
    # stable carries during this pass. Without a route the traffic follows
    # the ready pods, and only the floor counts.
    stable_share = 100 - min(carried, weight)
    keep = max(carriers(budget.floor, stable_share) if weighted else 0, budget.floor - canary.ready, 0)
    if budget.total == 1:
        keep = 0  # one pod in all: the swap is a gap, which maxUnavailable 1 of 1 accepts
    stable_replicas = max(keep, stable_goal(budget, canary_target))
    # Stable grows back (a canary pod stopped being ready) only into free room.
    stable_replicas = min(stable_replicas, max(stable.replicas, budget.total - canary.held))
    # The canary never gives pods up on the way forward (a pass that finds
    # more pods than the budget, after a switch of mode, waits instead).
    canary_replicas = max(min(canary.replicas, canary_target),
                          min(canary_target, budget.total - max(stable_replicas, stable.pods)))
    return Layout(stable=stable_replicas, canary=canary_replicas, weight=weight)


def backward(budget: Budget, stable: RolePods, canary: RolePods, *, carried: int, weighted: bool,
             canary_target: int = 0, weight: int = 0) -> Layout:
    """Toward `canary_target` canary pods at `weight` (0 and 0 to finish:
    stable takes everything back)."""
    if not weighted or canary.maybe_ready == 0:
        written = weight  # the ready-pod ratio moves by itself; or the canary carries nothing to protect
    else:
        written = max(weight, min(carried, 100 - most_share(budget.floor, stable.ready)))
    # Canary pods go only while the traffic still on them (the route may not
    # have moved yet: the larger of the two) and the floor are covered.
    on_canary = max(carried, written)
    keep = max(carriers(budget.floor, on_canary) if weighted else 0, budget.floor - stable.ready)
    canary_replicas = min(canary.replicas, max(canary_target, min(canary.maybe_ready, keep)))
    if budget.total == 1 and stable.replicas == 0 and canary_target == 0:
        # One pod in all (replicas 1, maxSurge 0): stable gets it back only
        # once the canary's is gone, a gap maxUnavailable 1 of 1 accepts.
        canary_replicas, written = 0, weight
    stable_replicas = min(budget.replicas, max(stable.replicas, budget.total - max(canary_replicas, canary.pods)))
    return Layout(stable=stable_replicas, canary=canary_replicas, weight=written)
