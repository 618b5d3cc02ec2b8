"""How many pods each role runs for a given canary weight.

Stable keeps its full count for the whole canary (no moment without ready
capacity); the canary gets its share of the same count on top, never fewer
than one pod, so it can be checked and can take its weight.
"""

import math

from ..api.spec import ModelDeploymentSpec
from ..status.observed import ObservedDeployment


def base_replicas(spec: ModelDeploymentSpec, stable: ObservedDeployment | None) -> int:
    """The count a weight is a share of: the fixed count, or under autoscaling
    what the HPA runs stable at now (at least minReplicas)."""
    if spec.fixed_replicas is not None:
        return spec.fixed_replicas
    assert spec.autoscaling is not None
    current = stable.replicas if stable is not None else 0
    return max(spec.autoscaling.min_replicas, current)


def canary_replicas(base: int, weight: int) -> int:
    """ceil(base * weight / 100), never below 1 while a canary exists."""
    return max(1, math.ceil(base * weight / 100))
