"""Issue 9, defects 11 and 15: metric analysis that gets non-finite answers, or
no answers at all. Each test failed before its fix."""

import json
import math
import re

import pytest
import yaml

from modeldeploy.api import InvalidSpec, parse_spec
from modeldeploy.api.rollout import PLACEHOLDERS, AnalysisSpec
from modeldeploy.api.status import DecisionRecord, ModelDeploymentStatus
from modeldeploy.cli.status_view import render_status
from modeldeploy.crd import render_crd
from modeldeploy.kube.prometheus import parse_result
from modeldeploy.rollout import AnalysisResults, MetricResult, read_state, render
from modeldeploy.rollout.analysis import FAIL, INCONCLUSIVE, _bindings, evaluate
from support.rollout_world import TABLE, settled_world, spec_for

INF, NAN = math.inf, math.nan
PROMETHEUS = {"address": "http://prometheus:9090"}
ERROR_RATE = {"name": "error-rate", "query": 'errors{revision="{{canary.revision}}"}', "max": 0.05}
UNREACHABLE = "Prometheus at http://prometheus:9090 unreachable: [Errno 111] Connection refused"


def v(version, **extra):
    return spec_for(version, replicas=4, **extra)


def analysis(**fields) -> AnalysisSpec:
    return AnalysisSpec.model_validate({"prometheus": PROMETHEUS, "metrics": [ERROR_RATE], **fields})


def analysed_world(answer, **fields):
    """A canary at 20% whose analysis is due every 30s, answered by `answer(plan)`."""
    rollout = {
        "steps": [{"setWeight": 20}, {"pause": {"duration": "1h"}}],
        "analysis": {"interval": "30s", "prometheus": PROMETHEUS, "metrics": [ERROR_RATE], **fields},
    }
    world = settled_world(v("v7", rollout=rollout))
    world.change(v("v8", rollout=rollout))
    world.analysis_answer = answer
    for _ in range(3):  # the pass that starts the canary creates it with no pod (replicas provider)
        world.reconcile()
        world.pods_ready()
    assert world.rollout["weight"] == 20 and world.rollout["lastAnalysisAt"]
    return world


def analyse_once(world):
    """Let one interval pass and run one analysis round; the status must be JSON."""
    world.later(30)
    decision = world.reconcile()
    json.dumps(world.status, allow_nan=False)  # what the API server accepts
    return decision


def answers(*values, stable=None):
    return lambda plan: AnalysisResults(metrics=(MetricResult("error-rate", values[0], stable_value=stable),))


# -- defect 11: +Inf, -Inf and NaN from Prometheus ------------------------------------------


def test_defect11_plus_inf_above_max_is_a_failed_check_saying_plus_inf_and_the_status_stays_json():
    world = analysed_world(answers(INF), failureLimit=1)
    analyse_once(world)
    assert world.phase == "Canary" and world.rollout["failedChecks"] == 1
    last = world.rollout["decisions"][-1]
    assert last["verdict"] == "Fail" and "value" not in last and "+Inf" in last["message"]
    analyse_once(world)
    assert world.phase == "RolledBack"
    assert "+Inf" in world.status["message"] and "error-rate" in world.status["message"]


def test_defect11_compare_to_stable_with_plus_inf_on_both_sides_is_not_a_pass():
    metric = {**ERROR_RATE, "compareToStable": True, "max": 0.1}
    [verdict] = evaluate(analysis(metrics=[metric]), AnalysisResults(metrics=(MetricResult("error-rate", INF, INF),)))
    assert verdict.verdict == INCONCLUSIVE and verdict.value is None and "+Inf" in verdict.why

    world = analysed_world(answers(INF, stable=INF), metrics=[metric])
    analyse_once(world)
    assert world.phase == "Paused" and "+Inf" in world.rollout["pausedReason"]
    assert world.rollout["decisions"][-1]["verdict"] == "Inconclusive"


@pytest.mark.parametrize(
    "canary, stable, bounds, expected",
    [
        (INF, 0.2, {"max": 0.1}, FAIL),  # canary off the chart, stable measurable: worse by any bound
        (0.2, INF, {"min": -0.1}, FAIL),  # higher-is-better metric: the canary is infinitely worse
        (0.2, INF, {"max": 0.1}, INCONCLUSIVE),  # better than an unmeasurable stable proves nothing
        (-INF, -INF, {"max": 0.1}, INCONCLUSIVE),
        (NAN, 0.2, {"max": 0.1}, INCONCLUSIVE),
        (0.2, NAN, {"max": 0.1}, INCONCLUSIVE),
    ],
)
def test_defect11_compare_to_stable_with_non_finite_values_never_passes(canary, stable, bounds, expected):
    metric = {"name": "error-rate", "query": "q", "compareToStable": True, **bounds}
    [verdict] = evaluate(analysis(metrics=[metric]), AnalysisResults(metrics=(MetricResult("error-rate", canary, stable),)))
    assert verdict.verdict == expected, verdict.why
    assert verdict.value is None or math.isfinite(verdict.value)


@pytest.mark.parametrize(
    "value, bounds, expected, says",
    [
        (INF, {"max": 0.05}, FAIL, "+Inf"),
        (-INF, {"min": 0.9}, FAIL, "-Inf"),
        (INF, {"min": 0.9}, INCONCLUSIVE, "+Inf"),  # not below the bound, but no number either: never a Pass
        (-INF, {"max": 0.05}, INCONCLUSIVE, "-Inf"),
        (NAN, {"max": 0.05}, INCONCLUSIVE, "NaN"),
    ],
)
def test_defect11_a_non_finite_value_fails_or_is_inconclusive_never_passes(value, bounds, expected, says):
    metric = {"name": "error-rate", "query": "q", **bounds}
    [verdict] = evaluate(analysis(metrics=[metric]), AnalysisResults(metrics=(MetricResult("error-rate", value),)))
    assert (verdict.verdict, verdict.value) == (expected, None)
    assert says in verdict.why


@pytest.mark.parametrize("samples, says", [(INF, "+Inf"), (NAN, "NaN"), (-INF, "-Inf")])
def test_defect11_non_finite_samples_are_a_samples_error_not_a_crash(samples, says):
    spec = analysis(minSamples=100, samplesQuery="sum(requests)")
    [verdict] = evaluate(spec, AnalysisResults(metrics=(MetricResult("error-rate", 0.0),), samples=samples))
    assert verdict.verdict == INCONCLUSIVE and verdict.samples is None
    assert "samplesQuery" in verdict.why and says in verdict.why
    # Without minSamples the samples are only recorded: still no crash, nothing non-finite kept.
    [verdict] = evaluate(analysis(samplesQuery="sum(requests)"),
                         AnalysisResults(metrics=(MetricResult("error-rate", 0.0),), samples=samples))
    assert verdict.verdict == "Pass" and verdict.samples is None


def test_defect11_plus_inf_samples_in_a_running_rollout_pause_it_with_a_message():
    world = analysed_world(
        lambda plan: AnalysisResults(metrics=(MetricResult("error-rate", 0.0),), samples=INF),
        minSamples=100, samplesQuery="sum(requests)",
    )
    analyse_once(world)
    assert world.phase == "Paused" and "+Inf" in world.rollout["pausedReason"]


def test_defect11_a_status_decision_record_never_holds_a_non_finite_value():
    for value in (INF, -INF, NAN):
        record = DecisionRecord(time="2025-03-01T12:00:00Z", metric="m", value=value, verdict="Fail", action="Rollback")
        assert record.value is None
        status = ModelDeploymentStatus.model_validate({"rollout": {"decisions": [record.model_dump(by_alias=True)]}})
        json.dumps(status.to_wire(), allow_nan=False)


def test_defect11_prometheus_plus_inf_reaches_the_judge_as_plus_inf():
    # histogram_quantile over the +Inf bucket: Prometheus sends the string "+Inf".
    payload = {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "+Inf"]}]}}
    assert parse_result(payload) == INF
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}}
    assert parse_result(scalar) is None  # NaN (0/0 with no traffic) is no data


# -- defect 15: an analysis that never answers --------------------------------------------


def erroring(error=UNREACHABLE):
    return lambda plan: AnalysisResults(metrics=(MetricResult("error-rate", None, error=error),))


def test_defect15_consecutive_query_errors_reach_the_limit_and_roll_back_with_the_error():
    world = analysed_world(erroring(), consecutiveErrorLimit=2)
    for count in (1, 2):
        analyse_once(world)
        assert world.phase == "Paused" and world.rollout["consecutiveErrors"] == count
        assert UNREACHABLE in world.rollout["pausedReason"]
    analyse_once(world)
    assert world.phase == "RolledBack" and world.rollout["failedChecks"] == 0
    message = world.status["message"]
    assert UNREACHABLE in message and "consecutiveErrorLimit 2" in message
    assert "RolledBack" in world.results()


def test_defect15_the_default_limit_tolerates_four_errors_in_a_row_like_argo_rollouts():
    assert AnalysisSpec().consecutive_error_limit == 4
    several = "query returned 3 series; aggregate it to one (e.g. sum(...))"
    world = analysed_world(erroring(several), onInconclusive="Continue")
    for _ in range(4):
        analyse_once(world)
        assert world.phase == "Canary"
    analyse_once(world)
    assert world.phase == "RolledBack" and "3 series" in world.status["message"]


def test_defect15_a_samples_query_error_counts_when_min_samples_depends_on_it():
    world = analysed_world(
        lambda plan: AnalysisResults(metrics=(MetricResult("error-rate", 0.0),), samples_error=UNREACHABLE),
        minSamples=10, samplesQuery="sum(requests)", consecutiveErrorLimit=0,
    )
    analyse_once(world)
    assert world.phase == "RolledBack" and UNREACHABLE in world.status["message"]


def test_defect15_a_round_without_errors_resets_the_count():
    rounds = iter([UNREACHABLE, UNREACHABLE, None, UNREACHABLE, UNREACHABLE])

    def answer(plan):
        error = next(rounds)
        return AnalysisResults(metrics=(MetricResult("error-rate", None if error else 0.01, error=error),))

    world = analysed_world(answer, consecutiveErrorLimit=2)
    seen = []
    for _ in range(5):
        analyse_once(world)
        seen.append(world.rollout["consecutiveErrors"])
    assert seen == [1, 2, 0, 1, 2]
    assert world.phase == "Paused"


def test_defect15_modeldeploy_status_shows_the_errors_in_a_row():
    world = analysed_world(erroring(), consecutiveErrorLimit=3)
    analyse_once(world)
    analyse_once(world)
    md = {"metadata": {"name": "fraud", "namespace": "ml"}, "spec": world.spec.model_dump(mode="json", by_alias=True),
          "status": world.status}
    assert "query errors 2 in a row of 3 tolerated" in render_status(md, world.now)


def test_defect15_the_error_count_survives_an_operator_restart():
    world = analysed_world(erroring(), consecutiveErrorLimit=3)
    decision = analyse_once(world)
    decision = analyse_once(world)
    assert decision.state.consecutive_errors == 2
    assert read_state(world.status).consecutive_errors == 2  # every pass starts from status alone
    analyse_once(world)
    analyse_once(world)
    assert world.phase == "RolledBack"


# -- defect 15: unknown placeholders are refused when the spec is parsed -------------------


def rollout_with(query=None, samples_query=None):
    metric = {**ERROR_RATE, **({"query": query} if query else {})}
    analysis_ = {"prometheus": PROMETHEUS, "metrics": [metric]}
    if samples_query:
        analysis_["samplesQuery"] = samples_query
    return {"model": {"uri": "s3://m/v1", "version": "v1", "format": "sklearn"}, "rollout": {"analysis": analysis_}}


def problems(raw) -> list[str]:
    try:
        parse_spec(raw, known_formats=TABLE.known_formats)
    except InvalidSpec as error:
        return error.problems
    return []


def test_defect15_an_unknown_placeholder_is_refused_naming_it_and_the_known_ones():
    [problem] = problems(rollout_with(query='errors{revision="{{canary.revison}}"}'))
    assert problem.startswith("spec.rollout.analysis.metrics[0].query: ")
    assert "{{canary.revison}}" in problem
    for known in ("{{canary.revision}}", "{{stable.revision}}", "{{namespace}}", "{{name}}"):
        assert known in problem
    [problem] = problems(rollout_with(samples_query='sum(requests{ns="{{ namespaces }}"})'))
    assert problem.startswith("spec.rollout.analysis.samplesQuery: ") and "{{ namespaces }}" in problem


def test_defect15_a_malformed_placeholder_is_refused_too():
    [problem] = problems(rollout_with(query='errors{revision="{{canary.revision}"}'))
    assert "{{canary.revision}" in problem and "{{canary.revision}}" in problem


def test_defect15_known_placeholders_with_spaces_inside_the_braces_are_accepted_and_rendered():
    query = 'x{rev="{{  canary.revision }}",ns="{{namespace}}",md="{{ name}}",st="{{stable.revision }}"}'
    assert problems(rollout_with(query=query)) == []
    bindings = {"canary.revision": "abc", "stable.revision": "def", "namespace": "ml", "name": "fraud"}
    assert render(query, bindings) == 'x{rev="abc",ns="ml",md="fraud",st="def"}'


def test_defect15_the_known_placeholders_are_the_ones_analysis_binds():
    world = settled_world(v("v7"))
    assert set(_bindings(world.inputs(), canary_revision="abc")) == set(PLACEHOLDERS)


QUERIES = [
    'errors{revision="{{canary.revision}}"}',
    "{{ name }}{{namespace}}{{stable.revision}}",
    "{{  canary.revision  }}",
    'rate(x{a=~"b{2}"}[1m])',
    "ends with {",
    "{}",
    "{{canary.revison}}",
    "{{canary.revision}",
    "{{{name}}}",
    "{{ }}",
    "{{",
    "{{\tname}}",
]


@pytest.mark.parametrize("query", QUERIES)
def test_defect15_the_crd_rule_refuses_exactly_what_the_operator_refuses(query):
    crd = yaml.safe_load(render_crd(TABLE.known_formats))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    analysis_schema = schema["properties"]["spec"]["properties"]["rollout"]["properties"]["analysis"]
    [metric_rule] = [r for r in analysis_schema["properties"]["metrics"]["items"]["x-kubernetes-validations"]
                     if "self.query.matches" in r["rule"]]
    [samples_rule] = [r for r in analysis_schema["x-kubernetes-validations"] if "self.samplesQuery.matches" in r["rule"]]
    for rule in (metric_rule, samples_rule):
        regex = re.search(r"matches\('([^']*)'\)", rule["rule"]).group(1)
        assert "\\" not in regex  # no escapes: reads the same in CEL, YAML and Python
        assert "{{canary.revision}}" in rule["message"]
    regex = re.search(r"matches\('([^']*)'\)", metric_rule["rule"]).group(1)
    accepted_by_crd = re.search(regex, query) is not None  # CEL matches() is an unanchored RE2 search
    assert accepted_by_crd == (problems(rollout_with(query=query)) == [])
    assert accepted_by_crd == (problems(rollout_with(samples_query=query)) == [])


def test_defect15_the_placeholder_rule_is_cheap_on_the_longest_query():
    longest = "x{" * 2048
    assert problems(rollout_with(query=longest)) == []
