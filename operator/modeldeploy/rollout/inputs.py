"""What decide() is given: everything observed, gathered once (Argo Rollouts'
rollout context), so the machine itself reads nothing and can be table-tested."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..status.observed import Observed
from ..traffic.weights import Weights
from .admission import CanarySlots
from .state import RolloutState


@dataclass(frozen=True)
class MetricResult:
    """One metric's query results, as the kube layer got them from Prometheus."""

    metric: str  # MetricCheck.name
    value: float | None  # canary value; None when the query returned no data
    stable_value: float | None = None  # compareToStable only
    error: str | None = None  # the query failed (Prometheus down, bad PromQL)


@dataclass(frozen=True)
class AnalysisResults:
    """The answers to an AnalysisPlan (see rollout.analysis.plan_analysis)."""

    metrics: tuple[MetricResult, ...] = ()
    samples: float | None = None  # samplesQuery's value; None when not asked or no data
    samples_error: str | None = None


@dataclass(frozen=True)
class Inputs:
    name: str
    namespace: str
    spec: ModelDeploymentSpec
    revision: str  # builders.compute_revision(spec, table)
    state: RolloutState  # rollout.read_state(stored status)
    observed: Observed  # stable and canary Deployments, pods of both roles
    weights: Weights | None  # provider.read_weights(...): the split the cluster realizes now
    now: datetime
    annotations: Mapping[str, str] = field(default_factory=dict)  # metadata.annotations
    analysis: AnalysisResults | None = None  # answers to plan_analysis(...), when it returned a plan
    # runtimes.runtime_to_wire of the runtime `revision` runs: the table's
    # for a new spec, the recorded one while the spec is the stable one's.
    runtime: Mapping[str, Any] | None = None
    # --max-concurrent-canaries: who holds a slot and who waits (None: no limit).
    slots: CanarySlots | None = None
    # provider.read_mirror(...): percent of requests the route copies to the
    # canary now (None: no route to read).
    mirror: int | None = None
