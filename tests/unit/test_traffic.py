"""Traffic providers: route shape from the spec, weights only from the argument,
and what is read back from a live route."""


import pytest
from hypothesis import given
from hypothesis import strategies as st

from support.golden import assert_matches_golden
from modeldeploy.api import parse_spec
from modeldeploy.builders import Owner
from modeldeploy.status import Observed, ObservedDeployment
from modeldeploy.runtimes import load_runtime_table
from modeldeploy.traffic import ALL_STABLE, Weights, achieved_weights, provider_for, provider_named

FORMATS = load_runtime_table().known_formats
OWNER = Owner(name="fraud", namespace="ml", uid="0b7e6a4c-1111-4222-8333-944455556666")
MODEL = {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn"}

GATEWAY = {
    "model": MODEL,
    "traffic": {
        "provider": "gatewayAPI",
        "gatewayAPI": {
            "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["fraud.example.com"],
        },
    },
}
ISTIO = {
    "model": MODEL,
    "traffic": {"provider": "istio", "istio": {"hosts": ["fraud.example.com"], "gateways": ["istio-system/public"]}},
}


def spec_of(raw, known_formats):
    return parse_spec(raw, known_formats=known_formats, name=OWNER.name)


def live(manifests):
    """As the kube layer caches children: (kind, name) -> body."""
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


@pytest.mark.parametrize("case, raw", [("route-gateway-api", GATEWAY), ("route-istio", ISTIO)])
def test_route_golden(case, raw, known_formats):
    spec = spec_of(raw, known_formats)
    assert_matches_golden(case, provider_for(spec).build_routes(OWNER, spec, Weights.to_canary(20)))


def test_replicas_provider_builds_no_route(known_formats):
    spec = spec_of({"model": MODEL}, known_formats)
    assert provider_for(spec).build_routes(OWNER, spec, Weights.to_canary(50)) == []


def test_istio_without_gateways_leaves_the_field_out(known_formats):
    raw = {"model": MODEL, "traffic": {"provider": "istio", "istio": {"hosts": ["fraud"]}}}
    spec = spec_of(raw, known_formats)
    [route] = provider_for(spec).build_routes(OWNER, spec, ALL_STABLE)
    assert "gateways" not in route["spec"]


@pytest.mark.parametrize("raw", [GATEWAY, ISTIO])
def test_shape_never_carries_the_live_weights(raw, known_formats):
    # Flagger's lesson: re-applying the shape must not reset traffic. The weights
    # in the manifest are exactly the argument, whatever the live route says.
    spec = spec_of(raw, known_formats)
    provider = provider_for(spec)
    at_half = provider.build_routes(OWNER, spec, Weights.to_canary(50))
    again = provider.build_routes(OWNER, spec, Weights.to_canary(50))
    assert again == at_half
    assert provider.read_weights(OWNER, live(again), Observed()) == Weights(50, 50)


@pytest.mark.parametrize("raw", [GATEWAY, ISTIO])
@given(canary=st.integers(0, 100))
def test_weights_read_back_as_written(raw, canary):
    spec = parse_spec(raw, known_formats=FORMATS)
    provider = provider_for(spec)
    routes = provider.build_routes(OWNER, spec, Weights.to_canary(canary))
    assert provider.read_weights(OWNER, live(routes), Observed()) == Weights.to_canary(canary)


@pytest.mark.parametrize("name", ["gatewayAPI", "istio"])
def test_missing_route_reads_as_unknown(name):
    assert provider_named(name).read_weights(OWNER, {}, Observed()) is None


def test_gateway_relative_weights_are_normalized():
    route = {
        "kind": "HTTPRoute",
        "metadata": {"name": "fraud"},
        "spec": {"rules": [{"backendRefs": [{"name": "fraud-stable", "weight": 3}, {"name": "fraud-canary", "weight": 1}]}]},
    }
    assert provider_named("gatewayAPI").read_weights(OWNER, live([route]), Observed()) == Weights(75, 25)


def test_gateway_backend_without_weight_uses_the_api_default():
    route = {"kind": "HTTPRoute", "metadata": {"name": "fraud"}, "spec": {"rules": [{"backendRefs": [{"name": "fraud-stable"}]}]}}
    assert provider_named("gatewayAPI").read_weights(OWNER, live([route]), Observed()) == ALL_STABLE


def ready(n):
    return ObservedDeployment(revision="r", model_version="v", generation=1, observed_generation=1, replicas=n, ready_replicas=n)


@pytest.mark.parametrize(
    "stable, canary, expected",
    [(4, 0, Weights(100, 0)), (4, 1, Weights(80, 20)), (2, 1, Weights(67, 33)), (1, 1, Weights(50, 50)), (0, 2, Weights(0, 100))],
)
def test_replicas_split_is_the_ready_pod_ratio(stable, canary, expected):
    observed = Observed(stable=ready(stable), canary=ready(canary))
    assert provider_named("replicas").read_weights(OWNER, {}, observed) == expected


def test_no_ready_pod_has_no_split():
    assert achieved_weights(0, 0) is None


@given(stable=st.integers(0, 1000), canary=st.integers(0, 1000))
def test_achieved_weights_stay_in_range_and_sum_to_100(stable, canary):
    weights = achieved_weights(stable, canary)
    if stable + canary == 0:
        assert weights is None
    else:
        assert 0 <= weights.canary <= 100 and weights.stable + weights.canary == 100
        assert (weights.canary == 0) == (canary == 0 or canary * 200 < stable + canary)


@pytest.mark.parametrize("bad", [(101, -1), (50, 49), (-1, 101)])
def test_weights_refuse_an_impossible_split(bad):
    with pytest.raises(ValueError):
        Weights(*bad)
