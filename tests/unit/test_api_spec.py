"""Spec validation as a user sees it: what is accepted, and what each mistake says."""

import pytest
import yaml

from modeldeploy.api import InvalidSpec, parse_spec

FULL_SPEC = yaml.safe_load(
    """
model:
  uri: s3://models/fraud/v7
  version: "v7"
  format: sklearn
runtime:
  image: docker.io/seldonio/mlserver:1.7.1
  port: 8080
  args: []
  env: [{name: LOG_LEVEL, value: debug}, {name: TOKEN, valueFrom: {secretKeyRef: {name: s, key: k}}}]
autoscaling: {minReplicas: 2, maxReplicas: 10, targetCPUUtilizationPercentage: 70}
resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi, nvidia.com/gpu: 1}}
podMetadata: {labels: {team: risk}, annotations: {owner: risk@example.com}}
nodeSelector: {pool: inference}
tolerations: [{key: gpu, operator: Exists, effect: NoSchedule}]
serviceAccountName: fraud-model
rollout:
  strategy: Canary
  steps:
    - setWeight: 10
    - pause: {duration: 30s}
    - pause: {}
  approvedVersion: "v8"
  progressDeadlineSeconds: 600
  analysis:
    interval: 30s
    failureLimit: 2
    minSamples: 100
    samplesQuery: 'sum(increase(requests_total[1m]))'
    onInconclusive: Pause
    prometheus: {address: http://prometheus.monitoring:9090}
    metrics: [{name: error-rate, query: 'sum(rate(errors[1m]))', min: 0.0, max: 0.01, compareToStable: false}]
traffic:
  provider: gatewayAPI
  gatewayAPI:
    parentRefs: [{name: public-gw, namespace: gateways, sectionName: https}]
    hostnames: [fraud.example.com]
"""
)


def problems_of(spec, known_formats, **kwargs):
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(spec, known_formats=known_formats, **kwargs)
    return caught.value.problems


def test_full_example_is_accepted_and_read_in_snake_case(known_formats):
    spec = parse_spec(FULL_SPEC, known_formats=known_formats, name="fraud")
    assert spec.autoscaling.target_cpu_utilization_percentage == 70
    assert spec.resources.limits["nvidia.com/gpu"] == 1
    assert spec.rollout.steps[2].pause.duration is None  # wait for approval
    assert spec.rollout.analysis.metrics[0].max == 0.01
    assert spec.traffic.gateway_api.parent_refs[0].section_name == "https"
    assert spec.runtime.env[1].value_from == {"secretKeyRef": {"name": "s", "key": "k"}}
    assert spec.fixed_replicas is None  # the HPA owns the count


def test_minimal_spec_gets_documented_defaults(minimal_spec, known_formats):
    spec = parse_spec(minimal_spec, known_formats=known_formats)
    assert spec.fixed_replicas == 1
    assert spec.rollout.strategy == "Canary"
    assert [s.set_weight for s in spec.rollout.steps] == [20, None, 50, None]
    assert spec.rollout.steps[1].pause.duration == "60s"
    assert spec.rollout.progress_deadline_seconds == 600
    assert spec.traffic.provider == "replicas"


def test_unknown_field_is_reported_not_ignored(minimal_spec, known_formats):
    minimal_spec["replicaz"] = 3
    minimal_spec["model"]["fromat"] = "onnx"
    assert problems_of(minimal_spec, known_formats) == [
        "spec.model.fromat: unknown field (check the spelling)",
        "spec.replicaz: unknown field (check the spelling)",
    ]


def test_snake_case_keys_are_not_accepted_on_the_wire(minimal_spec, known_formats):
    minimal_spec["service_account_name"] = "sa"
    assert problems_of(minimal_spec, known_formats) == [
        "spec.service_account_name: unknown field (check the spelling)"
    ]


def test_min_replicas_above_max_names_the_field_and_values(minimal_spec, known_formats):
    minimal_spec["autoscaling"] = {"minReplicas": 5, "maxReplicas": 3}
    minimal_spec["resources"] = {"requests": {"cpu": "1"}}
    assert problems_of(minimal_spec, known_formats) == [
        "spec.autoscaling.minReplicas: must be <= maxReplicas (got 5 > 3)"
    ]


def test_replicas_and_autoscaling_are_exclusive(minimal_spec, known_formats):
    minimal_spec["replicas"] = 2
    minimal_spec["autoscaling"] = {"maxReplicas": 3}
    minimal_spec["resources"] = {"requests": {"cpu": "1"}}
    assert problems_of(minimal_spec, known_formats) == [
        "spec: set either spec.replicas or spec.autoscaling, not both"
    ]


def test_autoscaling_needs_a_cpu_request(minimal_spec, known_formats):
    minimal_spec["autoscaling"] = {"maxReplicas": 3}
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith("spec.resources.requests.cpu: required with spec.autoscaling")


@pytest.mark.parametrize("replicas", [-1, 1001])
def test_replicas_out_of_range(minimal_spec, known_formats, replicas):
    minimal_spec["replicas"] = replicas
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith("spec.replicas: must be")


def test_zero_replicas_is_allowed(minimal_spec, known_formats):
    minimal_spec["replicas"] = 0
    assert parse_spec(minimal_spec, known_formats=known_formats).fixed_replicas == 0


def test_format_must_be_known_unless_an_image_is_given(minimal_spec, known_formats):
    minimal_spec["model"]["format"] = "paddle"
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith("spec.model.format: unknown format 'paddle': use one of huggingface, lightgbm")

    minimal_spec["runtime"] = {"image": "example.org/paddle-server:1.0"}
    assert parse_spec(minimal_spec, known_formats=known_formats).model.format == "paddle"


def test_no_format_and_no_image_is_refused(minimal_spec, known_formats):
    del minimal_spec["model"]["format"]
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith("spec.model.format: required unless spec.runtime.image is set")


@pytest.mark.parametrize("uri", ["ftp://host/model", "s3:/bucket", "/local/path", "s3://"])
def test_uri_scheme_is_checked(minimal_spec, known_formats, uri):
    minimal_spec["model"]["uri"] = uri
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith("spec.model.uri: ")
    assert "s3, gs, http, https, pvc, hf" in problem


@pytest.mark.parametrize("uri", ["http://models.local:8000/fraud/model.joblib", "https://example.com/fraud.tar.gz"])
def test_http_and_https_uris_are_accepted(minimal_spec, known_formats, uri):
    minimal_spec["model"]["uri"] = uri
    assert parse_spec(minimal_spec, known_formats=known_formats).model.uri == uri


def test_pvc_uri_exposes_claim_and_path(minimal_spec, known_formats):
    minimal_spec["model"]["uri"] = "pvc://model-store/fraud/v7/"
    spec = parse_spec(minimal_spec, known_formats=known_formats)
    assert (spec.model.pvc_claim, spec.model.pvc_path) == ("model-store", "fraud/v7")


def test_pvc_uri_needs_a_claim_name(minimal_spec, known_formats):
    minimal_spec["model"]["uri"] = "pvc://Bad_Claim/x"
    [problem] = problems_of(minimal_spec, known_formats)
    assert "PersistentVolumeClaim name" in problem


def test_each_step_has_exactly_one_action(minimal_spec, known_formats):
    minimal_spec["rollout"] = {"steps": [{"setWeight": 10, "pause": {}}, {}, {"setWeight": 101}]}
    assert problems_of(minimal_spec, known_formats) == [
        "spec.rollout.steps[0]: each rollout step sets exactly one of setWeight, setMirror or pause",
        "spec.rollout.steps[1]: each rollout step sets exactly one of setWeight, setMirror or pause",
        "spec.rollout.steps[2].setWeight: must be less than or equal to 100 (got 101)",
    ]


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        ("2d", "invalid duration '2d'"),
        ("25h", "must be between 1s and 24h (got 25h)"),
        ("0s", "must be between 1s and 24h (got 0s)"),
    ],
)
def test_pause_duration_is_parsed_and_bounded(minimal_spec, known_formats, duration, expected):
    minimal_spec["rollout"] = {"steps": [{"pause": {"duration": duration}}]}
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith(f"spec.rollout.steps[0].pause.duration: {expected}")


def test_analysis_interval_is_bounded(minimal_spec, known_formats):
    minimal_spec["rollout"] = {"analysis": {"interval": "2h"}}
    assert problems_of(minimal_spec, known_formats) == [
        "spec.rollout.analysis.interval: must be between 1s and 1h (got 2h)"
    ]


def test_metric_needs_a_bound_and_a_prometheus(minimal_spec, known_formats):
    minimal_spec["rollout"] = {"analysis": {"metrics": [{"name": "latency", "query": "q"}]}}
    assert problems_of(minimal_spec, known_formats) == [
        "spec.rollout.analysis.metrics[0]: a metric needs min, max, or both"
    ]
    minimal_spec["rollout"]["analysis"]["metrics"][0]["max"] = 0.5
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith("spec.rollout.analysis.prometheus: required when metrics are set")


def test_metric_min_above_max(minimal_spec, known_formats):
    minimal_spec["rollout"] = {
        "analysis": {"prometheus": {"address": "http://p:9090"}, "metrics": [{"name": "m", "query": "q", "min": 2, "max": 1}]}
    }
    assert problems_of(minimal_spec, known_formats) == [
        "spec.rollout.analysis.metrics[0].min: must be <= max (got 2.0 > 1.0)"
    ]


def test_min_samples_needs_a_samples_query(minimal_spec, known_formats):
    minimal_spec["rollout"] = {"analysis": {"minSamples": 100}}
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith("spec.rollout.analysis.samplesQuery: required when minSamples > 0")


def test_traffic_settings_must_match_the_provider(minimal_spec, known_formats):
    minimal_spec["traffic"] = {"provider": "istio"}
    assert problems_of(minimal_spec, known_formats) == ["spec.traffic.istio: required when provider is istio"]

    minimal_spec["traffic"] = {"istio": {"hosts": ["fraud.example.com"]}}
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem.startswith("spec.traffic.istio: set, but provider is replicas")


def test_quantities_accept_integers_and_strings_only(minimal_spec, known_formats):
    minimal_spec["resources"] = {"requests": {"cpu": 0.5, "memory": "lots"}, "limits": {"nvidia.com/gpu": 1}}
    problems = problems_of(minimal_spec, known_formats)
    assert problems[0].startswith('spec.resources.requests.cpu: 0.5 is not a resource quantity: write it as a string')
    assert problems[1].startswith("spec.resources.requests.memory: 'lots' is not a resource quantity")
    assert len(problems) == 2


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("a" * 46, "at most 45 characters"), ("Fraud", "must start with a letter"), ("7fraud", "must start with a letter")],
)
def test_names_that_cannot_name_children_are_refused(minimal_spec, known_formats, name, fragment):
    [problem] = problems_of(minimal_spec, known_formats, name=name)
    assert problem.startswith("metadata.name: ") and fragment in problem


def test_every_problem_is_listed_at_once(known_formats):
    spec = {"model": {"uri": "ftp://x", "version": ""}, "replicas": -1}
    problems = problems_of(spec, known_formats, name="a" * 50)
    assert [p.split(":")[0] for p in problems] == [
        "metadata.name",
        "spec.model.uri",
        "spec.model.version",
        "spec.replicas",
    ]


def test_missing_spec_says_what_is_required(known_formats):
    assert problems_of(None, known_formats) == ["spec.model: required"]


def test_credentials_name_a_secret(minimal_spec, known_formats):
    minimal_spec["model"]["credentials"] = {"secretName": "fraud-model-store"}
    assert parse_spec(minimal_spec, known_formats=known_formats).model.credentials.secret_name == "fraud-model-store"


@pytest.mark.parametrize("credentials, fragment", [
    ({"secretName": "Fraud_Store"}, "spec.model.credentials.secretName: 'Fraud_Store' is not a DNS-1123 subdomain"),
    ({"secretName": ""}, "spec.model.credentials.secretName: "),
    ({}, "spec.model.credentials.secretName: required"),
    ({"name": "fraud-model-store"}, "spec.model.credentials.name: unknown field"),
])
def test_credentials_refuse_what_cannot_name_a_secret(minimal_spec, known_formats, credentials, fragment):
    minimal_spec["model"]["credentials"] = credentials
    assert any(problem.startswith(fragment) for problem in problems_of(minimal_spec, known_formats))


def test_credentials_are_refused_for_a_mounted_claim(minimal_spec, known_formats):
    minimal_spec["model"].update(uri="pvc://model-store/fraud", credentials={"secretName": "s"})
    [problem] = problems_of(minimal_spec, known_formats)
    assert problem == "spec.model.credentials: a pvc:// model is mounted, not downloaded, so it takes no credentials"
