"""Shared pieces of the canary tests: a Gateway API traffic spec, version
bumps, route weights and a recorder of every split a route went through."""
from __future__ import annotations

from support.models import edited, get_md, status_view
from support.sampling import ChangeRecorder
from support.waiting import wait_until

GATEWAY = {"provider": "gatewayAPI",
           "gatewayAPI": {"parentRefs": [{"name": "public-gw", "namespace": "gateways"}],
                          "hostnames": ["fraud.example.com"]}}


def model_v(doc: dict, version: str, **spec) -> dict:
    new = edited(doc, **spec)
    new["spec"]["model"] = {**doc["spec"]["model"], "version": version,
                            "uri": doc["spec"]["model"]["uri"].rsplit("/", 1)[0] + "/" + version}
    return new


def route_weights(cluster, namespace, name, kind="httproute"):
    """(stable, canary) weights of the route's rule for requests without the
    canary headers (a header rule, when there is one, matches on headers)."""
    obj = cluster.get_json("-n", namespace, kind, name)
    if kind == "httproute":
        [rule] = [r for r in obj["spec"]["rules"] if not any(m.get("headers") for m in r.get("matches") or ())]
        return tuple(r.get("weight", 1) for r in rule["backendRefs"])
    [http] = [h for h in obj["spec"]["http"] if not h.get("match")]
    return tuple(r.get("weight", 0) for r in http["route"])


class WeightRecorder(ChangeRecorder):
    """Samples a route's weights in the background for the length of a test,
    so the assertions see the whole sequence traffic went through."""

    def __init__(self, cluster, namespace, name, kind="httproute"):
        super().__init__(lambda: route_weights(cluster, namespace, name, kind))


def stable_template(cluster, namespace, name):
    return cluster.get_json("-n", namespace, "deployment", f"{name}-stable")["spec"]["template"]


def canary_exists(cluster, namespace, name) -> bool:
    return any(d.metadata.name == f"{name}-canary" for d in cluster.apps.list_namespaced_deployment(namespace).items)


def wait_phase(cluster, namespace, name, phase, timeout=60):
    return wait_until(lambda: (m := get_md(cluster, namespace, name)).get("status", {}).get("phase") == phase and m,
                      timeout=timeout, what=f"phase {phase}",
                      describe=lambda: status_view(get_md(cluster, namespace, name)))
