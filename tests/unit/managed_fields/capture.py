"""Regenerates the managedFields fixtures of tests/unit/test_drift.py from the
real API server: the operator's own manifests (builders, gatewayAPI and istio
routes) are applied with the operator's Kube class under FIELD_MANAGER, and
each object is read back with its managedFields.

    KUBECONFIG=.cluster/kubeconfig PYTHONPATH=operator .venv/bin/python tests/unit/managed_fields/capture.py NAMESPACE

NAMESPACE must exist. The owner reference points at a ConfigMap created here
(a ModelDeployment would bring an operator to reconcile it); its shape in
managedFields, keyed by uid, is the same.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import yaml

from modeldeploy.api import parse_spec
from modeldeploy.builders import Owner, Role, build_autoscaler, build_deployment, build_disruption_budget, build_service
from modeldeploy.kube.clients import make_api_client
from modeldeploy.kube.resources import resource_of
from modeldeploy.kube.writing import Kube
from modeldeploy.runtimes import load_runtime_table
from modeldeploy.traffic import Weights, provider_for

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]


def manifests(owner: Owner) -> dict[str, dict]:
    table = load_runtime_table()
    example = yaml.safe_load((REPO / "examples" / "01-sklearn-fraud.yaml").read_text())
    scaled = {key: value for key, value in example["spec"].items() if key != "replicas"}
    scaled["autoscaling"] = {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 70}
    scaled_spec = parse_spec(scaled, known_formats=table.known_formats, name="scaled")
    # Another name, so that the fixed-replicas Deployment is not the one changed.
    scaled_owner = Owner(name="scaled", namespace=owner.namespace, uid=owner.uid)
    routes = {}
    for traffic in ({"provider": "gatewayAPI",
                     "gatewayAPI": {"parentRefs": [{"name": "public", "namespace": "gateways"}],
                                    "hostnames": ["fraud.example.com"]}},
                    {"provider": "istio", "istio": {"hosts": ["fraud.example.com"],
                                                    "gateways": ["istio-system/public"]}}):
        routed = parse_spec(dict(example["spec"], traffic=traffic), known_formats=table.known_formats,
                            name=owner.name)
        [route] = provider_for(routed).build_routes(owner, routed, Weights.to_canary(25))
        routes[route["kind"]] = route
    spec = parse_spec(example["spec"], known_formats=table.known_formats, name=owner.name)
    return {
        "deployment": build_deployment(owner, spec, table, role=Role.STABLE, replicas=spec.fixed_replicas),
        "deployment-autoscaled": build_deployment(scaled_owner, scaled_spec, table, role=Role.STABLE, replicas=None),
        "service": build_service(owner),
        "hpa": build_autoscaler(scaled_owner, scaled_spec.autoscaling),
        "pdb": build_disruption_budget(owner),
        "httproute": routes["HTTPRoute"],
        "virtualservice": routes["VirtualService"],
    }


def settled(stem: str, live: dict) -> bool:
    """Read back once the controllers have written too (their managedFields
    entries are part of the real shape): a status, and the HPA's count."""
    managers = {e["manager"] for e in live["metadata"]["managedFields"]}
    if stem == "deployment-autoscaled":
        return live["spec"].get("replicas") == 2 and len(managers) > 1
    if stem in ("deployment", "hpa", "pdb"):
        return len(managers) > 1
    return True


async def main(namespace: str) -> None:
    api = make_api_client()
    kube = Kube(api)
    try:
        owner_cm = await kube._call("POST", f"/api/v1/namespaces/{namespace}/configmaps",
                                    body={"metadata": {"name": "fraud-owner"}})
        owner = Owner(name="fraud", namespace=namespace, uid=owner_cm["metadata"]["uid"])
        applied = {}
        for stem, manifest in manifests(owner).items():
            manifest = json.loads(json.dumps(manifest))
            ref = manifest["metadata"]["ownerReferences"][0]
            ref.update(apiVersion="v1", kind="ConfigMap", name="fraud-owner")
            await kube.apply(manifest)
            applied[stem] = manifest
        for stem, manifest in applied.items():
            meta = manifest["metadata"]
            deadline = time.monotonic() + 60
            while True:
                live = await kube._call("GET", resource_of(manifest).path(meta["namespace"], meta["name"]))
                if settled(stem, live) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            (HERE / f"{stem}.json").write_text(
                json.dumps({"desired": manifest, "live": live}, indent=1, sort_keys=True) + "\n")
            print(stem, [(e["manager"], e["operation"], e.get("subresource")) for e in live["metadata"]["managedFields"]])
    finally:
        kube.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
