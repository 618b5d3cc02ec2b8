"""models:/ URIs on the local control plane, against a real MLflow registry
(`mlflow server`, tests/support/mlflow_registry.py) and an operator process
configured with its address: an alias resolves to a version and its run;
moving the alias rolls the new version out through an analysed canary; a
broken version is rolled back, recorded against its registry version; an
unknown model creates nothing; and a registry that goes away holds what
serves."""
from __future__ import annotations

import pytest
import yaml

from support.models import apply_md, condition, get_md, is_true, model_deployment, status_view, wait_ready
from support.mlflow_registry import running_mlflow
from support.process import OperatorProcess
from support.waiting import wait_until

from modeldeploy.api import parse_spec
from modeldeploy.api.registry import RegistryLookup, Resolution
from modeldeploy.builders import compute_revision
from modeldeploy.reconcile.registry import resolve_spec
from modeldeploy.runtimes import load_runtime_table

WINDOW = "10s"
ERROR_RATE = ('sum(rate(requests_total{revision="{{canary.revision}}",code="500"}[%s])) / '
              'sum(rate(requests_total{revision="{{canary.revision}}"}[%s]))' % (WINDOW, WINDOW))
SAMPLES = 'sum(increase(requests_total{revision="{{canary.revision}}"}[%s]))' % WINDOW


@pytest.fixture
def mlflow(tmp_path):
    with running_mlflow(tmp_path / "mlflow") as server:
        yield server


def following(name: str, prometheus) -> dict:
    doc = model_deployment(name, replicas=2, rollout={
        "steps": [{"setWeight": 50}, {"pause": {"duration": "15s"}}],
        "analysis": {"interval": "2s", "failureLimit": 1, "minSamples": 20, "samplesQuery": SAMPLES,
                     "onInconclusive": "Pause", "prometheus": {"address": prometheus.url},
                     "metrics": [{"name": "error-rate", "query": ERROR_RATE, "max": 0.05}]}})
    doc["spec"]["model"] = {"uri": "models:/fraud@champion", "version": "champion", "format": "sklearn",
                            "registry": {"pollInterval": "10s"}}
    return doc


def revision_for(doc: dict, version: str, run_id: str) -> str:
    """The revision the operator computes once the alias names `version`:
    the exporter labels its requests with it before its canary exists."""
    table = load_runtime_table()
    spec = parse_spec(doc["spec"], known_formats=table.known_formats)
    found = Resolution(doc["spec"]["model"]["uri"], f"s3://models/fraud/{version}", version, run_id)
    return compute_revision(resolve_spec(spec, RegistryLookup(found)), table)


def initializer_uri(cluster, namespace: str, deployment: str) -> str:
    body = cluster.apps.read_namespaced_deployment(deployment, namespace)
    return body.spec.template.spec.init_containers[0].args[0]


def registry_of(entry: dict) -> tuple:
    return entry["result"], (entry.get("registry") or {}).get("version"), (entry.get("registry") or {}).get("runId")


def test_an_alias_followed_rolls_out_its_moves_and_rolls_back_a_broken_version(
        cluster, own_namespace, tmp_path, mlflow, prometheus):
    ns = own_namespace
    v1, run1 = mlflow.register("fraud", "s3://models/fraud/1")
    v2, run2 = mlflow.register("fraud", "s3://models/fraud/2")
    mlflow.set_alias("fraud", "champion", v1)
    doc = following("fraud", prometheus)
    with OperatorProcess(cluster, ns, tmp_path / "operator.log",
                         env={"MODELDEPLOY_MLFLOW_TRACKING_URI": mlflow.url}):
        # A model the registry does not know: nothing is created, and the status says why.
        unknown = model_deployment("unknown", replicas=1)
        unknown["spec"]["model"] = {"uri": "models:/nobody/1", "version": "1", "format": "sklearn"}
        apply_md(cluster, ns, unknown)

        apply_md(cluster, ns, doc)
        md = wait_ready(cluster, ns, "fraud", timeout=90)
        assert md["status"]["model"] == {"uri": "models:/fraud@champion", "resolvedUri": "s3://models/fraud/1",
                                         "version": v1, "runId": run1, "pollInterval": "10s"}
        assert initializer_uri(cluster, ns, "fraud-stable") == "s3://models/fraud/1"
        assert "follows the MLflow registry" in condition(md, "Ready")["message"]
        assert [registry_of(h) for h in md["status"]["history"]] == [("Deployed", v1, run1)]

        held = wait_until(lambda: (condition(m := get_md(cluster, ns, "unknown"), "Stalled") or {}).get("reason")
                          == "RegistryUnavailable" and m, timeout=30, what="the unknown model held",
                          describe=lambda: status_view(get_md(cluster, ns, "unknown")))
        assert "nothing is created until it resolves" in held["status"]["message"]
        assert "not found" in held["status"]["message"]
        assert not cluster.apps.list_namespaced_deployment(ns, label_selector="modeldeploy.io/name=unknown").items

        # The alias moves to version 2: a canary, analysed, then promoted.
        prometheus.exporter.set(revision_for(doc, v2, run2), ok_per_second=30)
        mlflow.set_alias("fraud", "champion", v2)
        canary = wait_until(lambda: ((m := get_md(cluster, ns, "fraud"))["status"].get("rollout") or {})
                            .get("stage") == "Canary" and m, timeout=60, what="a canary of version 2",
                            describe=lambda: status_view(get_md(cluster, ns, "fraud")))
        assert canary["status"]["rollout"]["registry"] == {"uri": "models:/fraud@champion", "version": v2,
                                                           "runId": run2}
        assert initializer_uri(cluster, ns, "fraud-canary") == "s3://models/fraud/2"
        assert initializer_uri(cluster, ns, "fraud-stable") == "s3://models/fraud/1"
        promoted = wait_until(lambda: (m := get_md(cluster, ns, "fraud"))["status"]["history"][-1]["result"]
                              == "Promoted" and is_true(m, "Ready") and m, timeout=120, what="version 2 promoted",
                              describe=lambda: status_view(get_md(cluster, ns, "fraud")))
        assert [registry_of(h) for h in promoted["status"]["history"]] == [("Deployed", v1, run1),
                                                                            ("Promoted", v2, run2)]
        wait_until(lambda: initializer_uri(cluster, ns, "fraud-stable") == "s3://models/fraud/2", timeout=30,
                   what="stable on version 2")

        # A broken version 3 (its requests fail): rolled back, recorded against version 3.
        v3, run3 = mlflow.register("fraud", "s3://models/fraud/3")
        prometheus.exporter.set(revision_for(doc, v3, run3), ok_per_second=20, errors_per_second=10)
        mlflow.set_alias("fraud", "champion", v3)
        rolled = wait_until(lambda: (m := get_md(cluster, ns, "fraud"))["status"].get("phase") == "RolledBack" and m,
                            timeout=120, what="version 3 rolled back",
                            describe=lambda: status_view(get_md(cluster, ns, "fraud")))
        assert registry_of(rolled["status"]["history"][-1]) == ("RolledBack", v3, run3)
        assert rolled["status"]["model"]["version"] == v3  # what the alias names, rolled back
        wait_until(lambda: not cluster.apps.list_namespaced_deployment(
            ns, label_selector="modeldeploy.io/role=canary,modeldeploy.io/name=fraud").items,
                   timeout=30, what="the canary removed")
        stable = cluster.apps.read_namespaced_deployment("fraud-stable", ns)
        assert initializer_uri(cluster, ns, "fraud-stable") == "s3://models/fraud/2"

        # The registry goes away: the next read of the alias fails, the last answer (v3, rolled back) stays in force,
        # the status says so, and nothing that serves moves.
        mlflow.stop()
        down = wait_until(lambda: "RegistryUnavailable" in (m := get_md(cluster, ns, "fraud"))["status"].get(
                          "message", "") and m, timeout=60, what="RegistryUnavailable",
                          describe=lambda: status_view(get_md(cluster, ns, "fraud")))
        assert "unreachable" in down["status"]["message"], down["status"]["message"]
        assert f"stays at version {v3} as last read" in down["status"]["message"], down["status"]["message"]
        # The conditions say what they said before the outage (the rollback of v3), not a new stall.
        assert [(condition(down, t)["status"], condition(down, t)["reason"]) for t in ("Ready", "Stalled")] == \
            [(condition(rolled, t)["status"], condition(rolled, t)["reason"]) for t in ("Ready", "Stalled")]
        after = cluster.apps.read_namespaced_deployment("fraud-stable", ns)
        assert after.metadata.generation == stable.metadata.generation
        assert after.status.ready_replicas == 2
        assert initializer_uri(cluster, ns, "fraud-stable") == "s3://models/fraud/2"


@pytest.mark.parametrize("uri, pattern", [
    ("models:/fraud", "models:/<name>/<version number> or models:/<name>@<alias>"),
    ("models:/fraud/v7", "models:/<name>/<version number> or models:/<name>@<alias>"),
])
def test_the_api_server_refuses_a_malformed_registry_uri_in_words(cluster, namespace, uri, pattern):
    doc = model_deployment("malformed", replicas=1)
    doc["spec"]["model"] = {"uri": uri, "version": "1", "format": "sklearn"}
    refused = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert refused.returncode != 0 and pattern in refused.stderr, refused.stderr


def test_the_api_server_refuses_a_poll_interval_on_a_version_number(cluster, namespace):
    doc = model_deployment("pinned", replicas=1)
    doc["spec"]["model"] = {"uri": "models:/fraud/7", "version": "7", "format": "sklearn",
                            "registry": {"pollInterval": "1m"}}
    refused = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert refused.returncode != 0 and "pollInterval follows an alias" in refused.stderr, refused.stderr
