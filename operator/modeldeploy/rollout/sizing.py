"""How many pods each role runs for a given canary weight.

Stable keeps its full count for the whole canary (no moment without ready
capacity); the canary's pods come on top. How many depends on how the
provider splits traffic:

- weighted providers (Gateway API, Istio): the route sends the weight, so
  the canary needs its share of stable's count, ceil(base * w / 100), never
  fewer than one pod (so it is checked before any traffic reaches it);
- `replicas`: the client Service spreads requests over every ready pod, so c
  canary pods next to `base` stable pods take c / (base + c) of the traffic.
  The canary gets the c that comes closest to the weight, none before the
  first setWeight (issue 9, defect 13), at least one for any weight above 0,
  and at most `base` (50%): whole pods are the granularity, and the status
  says what a step rounds to (rollout.report).
"""

import math

from ..api.spec import ModelDeploymentSpec
from ..status.observed import ObservedDeployment
from ..traffic.weights import Weights


def base_replicas(spec: ModelDeploymentSpec, stable: ObservedDeployment | None, floor: int | None = None) -> int:
    """The count a weight is a share of: the fixed count, or under autoscaling
    what the HPA runs stable at now (at least minReplicas, and at least the
    floor the rollout holds it to while a canary runs)."""
    if spec.fixed_replicas is not None:
        return spec.fixed_replicas
    assert spec.autoscaling is not None
    current = stable.replicas if stable is not None else 0
    return max(spec.autoscaling.min_replicas, current, floor or 0)


def canary_replicas(base: int, weight: int, *, weighted: bool = True) -> int:
    if weighted:
        return max(1, math.ceil(base * weight / 100))
    if weight <= 0 or base <= 0:
        return 0
    if weight >= 50:
        return base
    return min(base, max(1, round(base * weight / (100 - weight))))


def split_weight(base: int, canary: int) -> int:
    """The canary's percent of traffic with the `replicas` provider."""
    weights = Weights.from_ratio(base, canary)
    return weights.canary if weights is not None else 0
