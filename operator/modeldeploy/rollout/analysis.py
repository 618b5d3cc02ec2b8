"""Metric analysis: when it is due, which queries to run, and what the answers mean.

The flow, with no I/O here:
    plan = plan_analysis(inputs)               # None: nothing due now
    results = <kube layer queries plan>         # AnalysisResults
    decide(replace(inputs, analysis=results))  # evaluates them, once

A check with fewer samples than minSamples is Inconclusive, never a Pass
(Flagger #1035: analysis passing vacuously at low traffic). Nor is a value
that is not a number: +Inf or -Inf (histogram_quantile past its last bucket)
fails a bound it lies beyond and is Inconclusive otherwise; NaN is no data.
A query that fails (or gives no answer) is an error: Inconclusive, and counted
by the machine against consecutiveErrorLimit.
"""

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..api.rollout import AnalysisSpec, MetricCheck
from ..api.status import DecisionRecord
from ..status.transitions import format_time
from .inputs import AnalysisResults, Inputs, MetricResult
from .state import RolloutState, Stage

PASS, FAIL, INCONCLUSIVE = "Pass", "Fail", "Inconclusive"
MAX_SAMPLES = 2**53  # what an int64 status field and every JSON reader hold exactly
_PLACEHOLDER = re.compile(r"\{\{ *([^{} ]+) *\}\}")


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
    value: float | None  # always finite (None when there was none)
    bound: str
    samples: int | None
    reason: str  # one line, without the metric's name
    error: bool = False  # a query failed or went unanswered (counts toward consecutiveErrorLimit)

    @property
    def why(self) -> str:
        """One line, for pausedReason / the rollback message."""
        return f"metric {self.metric}: {self.reason}"

    def record(self, now: datetime, action: str) -> DecisionRecord:
        return DecisionRecord(
            time=format_time(now), metric=self.metric, value=_finite(self.value), bound=self.bound,
            samples=self.samples, verdict=self.verdict, action=action, message=_clip(self.reason),
        )


def analysis_spec(inputs: Inputs) -> AnalysisSpec:
    return inputs.spec.rollout.analysis or AnalysisSpec()


def interval_seconds(inputs: Inputs) -> int:
    return analysis_spec(inputs).interval_seconds


def analysis_due(inputs: Inputs, state: RolloutState) -> bool:
    """Metrics are checked every interval once the canary takes traffic (or copies of it)."""
    spec = inputs.spec.rollout.analysis
    # Shadow requests count: a canary that only sees copies is judged on them.
    # BlueGreen's preview is judged before it takes any (its clock starts when it is ready).
    if spec is None or not spec.metrics or state.stage != Stage.CANARY or (
            state.weight == 0 and state.mirror == 0 and inputs.spec.rollout.strategy != "BlueGreen"):
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
    """Replace {{key}} (spaces inside the braces allowed) with its value. The
    spec refuses unknown keys (api.rollout.check_placeholders)."""
    return _PLACEHOLDER.sub(lambda match: bindings.get(match.group(1), match.group(0)), query)


def evaluate(spec: AnalysisSpec, results: AnalysisResults) -> tuple[Verdict, ...]:
    """One verdict per configured metric; a metric without an answer is Inconclusive."""
    by_name = {r.metric: r for r in results.metrics}
    samples, samples_problem = _count(results)
    return tuple(
        _judge(check, by_name.get(check.name), samples, samples_problem, spec.min_samples) for check in spec.metrics
    )


def _count(results: AnalysisResults) -> tuple[int | None, str | None]:
    """samplesQuery's answer as a count, or what is wrong with it."""
    if results.samples_error:
        return None, f"samples query failed: {results.samples_error}"
    if results.samples is None:
        return None, None
    if not math.isfinite(results.samples):
        return None, f"samplesQuery returned {_number(results.samples)}, not a count of requests"
    return min(int(results.samples), MAX_SAMPLES), None


def _judge(
    check: MetricCheck, result: MetricResult | None, samples: int | None, samples_problem: str | None, min_samples: int
) -> Verdict:
    bound = describe_bound(check)

    def verdict(kind: str, value: float | None, why: str, error: bool = False) -> Verdict:
        return Verdict(check.name, kind, _finite(value), bound, samples, why, error)

    if result is None:
        return verdict(INCONCLUSIVE, None, "no answer to the query", error=True)
    if result.error:
        return verdict(INCONCLUSIVE, None, f"query failed: {result.error}", error=True)
    if min_samples:
        if samples_problem:
            return verdict(INCONCLUSIVE, result.value, samples_problem, error=True)
        if samples is None or samples < min_samples:
            return verdict(INCONCLUSIVE, result.value, f"{samples or 0} samples < minSamples {min_samples}")
    if result.value is None:
        return verdict(INCONCLUSIVE, None, "the query returned no data")
    if math.isnan(result.value):
        return verdict(INCONCLUSIVE, None, "the query returned NaN (no data)")
    measured, subject = result.value, f"the value is {_number(result.value)}"
    if check.compare_to_stable:
        stable = result.stable_value
        if stable is None or math.isnan(stable):
            return verdict(INCONCLUSIVE, result.value, "no stable value to compare with")
        measured = result.value - stable
        subject = f"canary {_number(result.value)} - stable {_number(stable)} is {_number(measured)}"
        if math.isnan(measured):  # +Inf - +Inf: both off the scale, neither is worse
            return verdict(
                INCONCLUSIVE, None, f"canary and stable are both {_number(stable)}; they cannot be compared"
            )
    below = check.min is not None and measured < check.min
    above = check.max is not None and measured > check.max
    if math.isinf(measured):
        if below or above:
            return verdict(FAIL, None, f"{subject}, {'below' if below else 'above'} {bound}")
        return verdict(INCONCLUSIVE, None, f"{subject}: not a number to judge {bound} by, never a Pass")
    if below:
        return verdict(FAIL, measured, f"{measured:g} is below {bound}")
    if above:
        return verdict(FAIL, measured, f"{measured:g} is above {bound}")
    return verdict(PASS, measured, f"{measured:g} within {bound}")


def _number(value: float) -> str:
    """A value as Prometheus spells it (+Inf, -Inf, NaN)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:g}"


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _clip(text: str, limit: int = 512) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_bound(check: MetricCheck) -> str:
    subject = "canary - stable" if check.compare_to_stable else "value"
    if check.min is not None and check.max is not None:
        return f"{check.min:g} <= {subject} <= {check.max:g}"
    if check.min is not None:
        return f"{subject} >= {check.min:g}"
    return f"{subject} <= {check.max:g}"
