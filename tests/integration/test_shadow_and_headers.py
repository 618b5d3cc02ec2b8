"""Issue 12 on the real control plane: shadow steps (setMirror) and
header-routed canaries, written by the operator and read back from the API
server (which keeps RequestMirror.percent in the Gateway API installed here,
and refuses both with the replicas provider)."""
from __future__ import annotations

import json

import pytest

from support.canary import GATEWAY, WeightRecorder, canary_exists, model_v, route_weights, wait_phase
from support.models import apply_md, get_md, is_true, model_deployment, status_view
from support.waiting import wait_until

HEADERS = [{"name": "x-model-canary", "value": "true"}]
SHADOW_STEPS = {"steps": [{"setMirror": {"percent": 50}}, {"pause": {}}]}
ISTIO = {"provider": "istio", "istio": {"hosts": ["fraud.example.com"]}}


def header_rule_backends(route: dict, kind: str) -> dict:
    """{Service: weight} of the route's rule for requests with the canary headers."""
    if kind == "httproute":
        [rule] = [r for r in route["spec"]["rules"] if any(m.get("headers") for m in r.get("matches") or ())]
        return {ref["name"]: ref["weight"] for ref in rule["backendRefs"]}
    [http] = [h for h in route["spec"]["http"] if h.get("match")]
    return {d["destination"]["host"].split(".")[0]: d["weight"] for d in http["route"]}


def mirror_of(route: dict, kind: str) -> tuple[str, int] | None:
    """(Service, percent) the route copies requests to, or None."""
    if kind == "httproute":
        [rule] = [r for r in route["spec"]["rules"] if not any(m.get("headers") for m in r.get("matches") or ())]
        for found in rule.get("filters") or ():
            if found["type"] == "RequestMirror":
                return found["requestMirror"]["backendRef"]["name"], found["requestMirror"].get("percent", 100)
        return None
    [http] = [h for h in route["spec"]["http"] if not h.get("match")]
    if "mirror" not in http:
        return None
    return http["mirror"]["host"].split(".")[0], http.get("mirrorPercentage", {}).get("value", 100)


@pytest.mark.parametrize("kind, traffic", [("httproute", GATEWAY), ("virtualservice", ISTIO)])
def test_a_shadow_step_and_canary_headers_reach_the_route_and_end_with_promotion(
        cluster, namespace, operator, kind, traffic):
    name = "shadow"
    doc = model_deployment(name, replicas=2, traffic={**traffic, "canaryHeaders": HEADERS}, rollout=SHADOW_STEPS)
    apply_md(cluster, namespace, doc)
    wait_until(lambda: is_true(get_md(cluster, namespace, name), "Ready"), timeout=60, what="Ready on v1",
               describe=lambda: status_view(get_md(cluster, namespace, name)))
    route = cluster.get_json("-n", namespace, kind, name)
    assert header_rule_backends(route, kind) == {f"{name}-stable": 100, f"{name}-canary": 0}
    assert mirror_of(route, kind) is None
    assert get_md(cluster, namespace, name)["status"]["traffic"]["headersToCanary"] is False

    with WeightRecorder(cluster, namespace, name, kind=kind) as recorder:
        apply_md(cluster, namespace, model_v(doc, "v2"))
        # Paused at the approval step: the shadow step passed, so the API
        # server kept the percentage the operator wrote.
        paused = wait_phase(cluster, namespace, name, "Paused")
        route = cluster.get_json("-n", namespace, kind, name)
        assert mirror_of(route, kind) == (f"{name}-canary", 50)
        assert header_rule_backends(route, kind) == {f"{name}-stable": 0, f"{name}-canary": 100}
        assert paused["status"]["traffic"] == {"stable": 100, "canary": 0, "verified": True, "mirror": 50,
                                               "headersToCanary": True}
        assert paused["status"]["rollout"]["mirror"] == 50
        ready = [c for c in paused["status"]["conditions"] if c["type"] == "Ready"][0]
        assert "a copy of 50% of the requests" in ready["message"], ready

        apply_md(cluster, namespace, model_v(doc, "v2", rollout={**SHADOW_STEPS, "approvedVersion": "v2"}))
        wait_until(lambda: is_true(m := get_md(cluster, namespace, name), "Ready")
                   and m["status"]["stable"]["modelVersion"] == "v2" and m,
                   timeout=60, what="promotion", describe=lambda: status_view(get_md(cluster, namespace, name)))
        wait_until(lambda: not canary_exists(cluster, namespace, name), timeout=30, what="the canary removed")
    assert set(recorder.seen) == {(100, 0)}, f"a shadow step moves no client traffic: {recorder.seen}"
    route = cluster.get_json("-n", namespace, kind, name)
    assert mirror_of(route, kind) is None, "the copies end with the rollout"
    assert header_rule_backends(route, kind) == {f"{name}-stable": 100, f"{name}-canary": 0}
    done = get_md(cluster, namespace, name)["status"]["traffic"]
    assert "mirror" not in done and done["headersToCanary"] is False


def test_the_api_server_refuses_shadow_steps_and_canary_headers_without_a_route(cluster, namespace):
    mirrored = model_deployment("no-route", replicas=1, rollout={"steps": [{"setMirror": {"percent": 10}}]})
    refused = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(mirrored), check=False)
    assert refused.returncode != 0
    assert "setMirror needs traffic.provider gatewayAPI or istio" in refused.stderr, refused.stderr
    headers = model_deployment("no-route", replicas=1, traffic={"canaryHeaders": HEADERS})
    refused = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(headers), check=False)
    assert refused.returncode != 0
    assert "canaryHeaders needs provider gatewayAPI or istio" in refused.stderr, refused.stderr
    both = model_deployment("no-route", replicas=1, rollout={"steps": [{"setMirror": {"percent": 10},
                                                                        "setWeight": 10}]})
    refused = cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(both), check=False)
    assert "exactly one of setWeight, setMirror or pause" in refused.stderr, refused.stderr
