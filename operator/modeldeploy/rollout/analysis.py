"""Metric analysis: when it is due, which queries to run, and what the answers mean.

The flow, with no I/O here:
    plan = plan_analysis(inputs)               # None: nothing due now
    results = <kube layer queries plan>         # AnalysisResults
    decide(replace(inputs, analysis=results))  # evaluates them, once

A check with fewer samples than minSamples is Inconclusive, never a Pass
(Flagger #1035: analysis passing vacuously at low traffic).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..api.durations import parse_duration
from ..api.rollout import AnalysisSpec, MetricCheck
from ..api.status import Decision as DecisionRecord
from ..status.transitions import format_time
from .inputs import AnalysisResults, Inputs, MetricResult
from .state import RolloutState, Stage

PASS, FAIL, INCONCLUSIVE = "Pass", "Fail", "Inconclusive"


@dataclass(frozen=True)
class MetricQuery:
    metric: str
    canary: str  # PromQL for the canary
    stable: str | None = None  # the same query for stable (compareToStable only)


@dataclass(frozen=True)
class AnalysisPlan:
    address: str  # Prometheus base URL
    metrics: tuple[MetricQuery, ...]
    samples: str | None = None  # samplesQuery, rendered


@dataclass(frozen=True)
class Verdict:
    metric: str
    verdict: str  # PASS | FAIL | INCONCLUSIVE
    value: float | None
    bound: str
    samples: int | None
    why: str  # one line, for pausedReason / the rollback message

    def record(self, now: datetime, action: str) -> DecisionRecord:
        return DecisionRecord(
            time=format_time(now), metric=self.metric, value=self.value, bound=self.bound,
            samples=self.samples, verdict=self.verdict, action=action,
        )


def analysis_spec(inputs: Inputs) -> AnalysisSpec:
    return inputs.spec.rollout.analysis or AnalysisSpec()


def interval_seconds(inputs: Inputs) -> int:
    return parse_duration(analysis_spec(inputs).interval)


def analysis_due(inputs: Inputs, state: RolloutState) -> bool:
    """Metrics are checked every interval once the canary takes traffic."""
    spec = inputs.spec.rollout.analysis
    if spec is None or not spec.metrics or state.stage != Stage.CANARY or state.weight == 0:
        return False
    if state.last_analysis_at is None:
        return False  # the clock starts when traffic first reaches the canary
    return inputs.now - state.last_analysis_at >= timedelta(seconds=interval_seconds(inputs))


def plan_analysis(inputs: Inputs) -> AnalysisPlan | None:
    """The queries to run now, templated; None when no analysis is due."""
    state = inputs.state
    if not analysis_due(inputs, state) or state.canary is None or state.stable is None:
        return None
    spec = analysis_spec(inputs)
    assert spec.prometheus is not None  # the API requires it with metrics
    canary = _bindings(inputs, canary_revision=state.canary.revision)
    # The stable value is the same query with {{canary.revision}} bound to the stable revision.
    stable = _bindings(inputs, canary_revision=state.stable.revision)
    return AnalysisPlan(
        address=spec.prometheus.address,
        metrics=tuple(
            MetricQuery(
                metric=m.name,
                canary=render(m.query, canary),
                stable=render(m.query, stable) if m.compare_to_stable else None,
            )
            for m in spec.metrics
        ),
        samples=render(spec.samples_query, canary) if spec.samples_query else None,
    )


def _bindings(inputs: Inputs, *, canary_revision: str) -> dict[str, str]:
    state = inputs.state
    return {
        "canary.revision": canary_revision,
        "stable.revision": state.stable.revision if state.stable else "",
        "namespace": inputs.namespace,
        "name": inputs.name,
    }


def render(query: str, bindings: dict[str, str]) -> str:
    """Replace {{key}} (spaces inside the braces allowed) with its value."""
    for key, value in bindings.items():
        for spelling in (f"{{{{{key}}}}}", f"{{{{ {key} }}}}"):
            query = query.replace(spelling, value)
    return query


def evaluate(spec: AnalysisSpec, results: AnalysisResults) -> tuple[Verdict, ...]:
    """One verdict per configured metric; a metric without an answer is Inconclusive."""
    by_name = {r.metric: r for r in results.metrics}
    samples = None if results.samples is None else int(results.samples)
    return tuple(_judge(check, by_name.get(check.name), samples, results, spec.min_samples) for check in spec.metrics)


def _judge(
    check: MetricCheck, result: MetricResult | None, samples: int | None, results: AnalysisResults, min_samples: int
) -> Verdict:
    bound = describe_bound(check)

    def verdict(kind: str, value: float | None, why: str) -> Verdict:
        return Verdict(check.name, kind, value, bound, samples, f"metric {check.name}: {why}")

    if result is None:
        return verdict(INCONCLUSIVE, None, "no result")
    if result.error:
        return verdict(INCONCLUSIVE, None, f"query failed: {result.error}")
    if min_samples:
        if results.samples_error:
            return verdict(INCONCLUSIVE, result.value, f"samples query failed: {results.samples_error}")
        if samples is None or samples < min_samples:
            return verdict(INCONCLUSIVE, result.value, f"{samples or 0} samples < minSamples {min_samples}")
    if result.value is None:
        return verdict(INCONCLUSIVE, None, "the query returned no data")
    measured = result.value
    if check.compare_to_stable:
        if result.stable_value is None:
            return verdict(INCONCLUSIVE, result.value, "no stable value to compare with")
        measured = result.value - result.stable_value
    if check.min is not None and measured < check.min:
        return verdict(FAIL, measured, f"{measured:g} is below {bound}")
    if check.max is not None and measured > check.max:
        return verdict(FAIL, measured, f"{measured:g} is above {bound}")
    return verdict(PASS, measured, f"{measured:g} within {bound}")


def describe_bound(check: MetricCheck) -> str:
    subject = "canary - stable" if check.compare_to_stable else "value"
    if check.min is not None and check.max is not None:
        return f"{check.min:g} <= {subject} <= {check.max:g}"
    if check.min is not None:
        return f"{subject} >= {check.min:g}"
    return f"{subject} <= {check.max:g}"
