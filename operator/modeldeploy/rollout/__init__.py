"""The canary rollout machine (pure): (spec, stored state, observed, now) -> Decision.

    state = read_state(md["status"])
    inputs = Inputs(name, namespace, spec, revision, state, observed, weights, now, annotations)
    plan = plan_analysis(inputs)              # queries due now, or None
    if plan: inputs = replace(inputs, analysis=<answers from Prometheus>)
    decision = decide(inputs)                 # what to apply, post and report

No kopf, no kubernetes client, no clock of its own, no sleeps.
"""

from .analysis import AnalysisPlan, MetricQuery, plan_analysis, render
from .annotations import ABORT, PROMOTE
from .decision import Decision, Event
from .inputs import AnalysisResults, Inputs, MetricResult
from .machine import decide
from .sizing import base_replicas, canary_replicas
from .snapshot import spec_for_stable, take_snapshot
from .state import CanaryRevision, RolloutState, Stage, StableRevision, read_state

__all__ = [
    "ABORT",
    "PROMOTE",
    "AnalysisPlan",
    "AnalysisResults",
    "CanaryRevision",
    "Decision",
    "Event",
    "Inputs",
    "MetricQuery",
    "MetricResult",
    "RolloutState",
    "Stage",
    "StableRevision",
    "base_replicas",
    "canary_replicas",
    "decide",
    "plan_analysis",
    "read_state",
    "render",
    "spec_for_stable",
    "take_snapshot",
]
