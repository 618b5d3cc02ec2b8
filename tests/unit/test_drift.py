"""Drift detection (reconcile/drift.py): containment, fields removed from what
we send (from our managedFields entry), and the replicas handover.

The fixtures in managed_fields/ are real: the operator's own manifests
(builders, gatewayAPI and istio routes) applied under its field manager to the
local control plane and read back (managed_fields/capture.py regenerates
them). Each holds {"desired": what was applied, "live": what was read}.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from modeldeploy.kube.cache import Cache, _slim
from modeldeploy.reconcile.drift import (FIELD_MANAGER, HANDOVER_MANAGER, applied_entries, holds, needs_apply,
                                         owns, removed_field, replicas_handover)

FIXTURES = Path(__file__).parent / "managed_fields"
KINDS = ("deployment", "deployment-autoscaled", "service", "hpa", "pdb", "httproute", "virtualservice")


def fixture(stem: str) -> tuple[dict, dict]:
    data = json.loads((FIXTURES / f"{stem}.json").read_text())
    return data["desired"], data["live"]


def container(manifest: dict, name: str = "model-server") -> dict:
    return next(c for c in manifest["spec"]["template"]["spec"]["containers"] if c["name"] == name)


# --- containment: holds -----------------------------------------------------

def test_holds_ignores_fields_others_set_and_defaults():
    desired = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}}
    live = {"spec": {"replicas": 2, "progressDeadlineSeconds": 600,
                     "template": {"spec": {"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always"}],
                                           "dnsPolicy": "ClusterFirst"}}}}
    assert holds(desired, live)


def test_holds_sees_a_changed_value():
    assert not holds({"spec": {"replicas": 2}}, {"spec": {"replicas": 3}})
    assert not holds({"spec": {"hostnames": ["a"]}}, {"spec": {"hostnames": ["a", "b"]}})


def test_holds_compares_quantities_by_value():
    assert holds({"cpu": "1000m", "memory": "1Gi"}, {"cpu": "1", "memory": "1073741824"})
    assert not holds({"cpu": "500m"}, {"cpu": "1"})


def test_holds_accepts_empty_values_the_api_server_drops():
    assert holds({"args": [], "readOnly": False, "labels": {}, "name": "a"}, {"name": "a"})


def test_holds_merges_lists_by_name_keeping_our_order():
    desired = [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]
    assert holds(desired, [{"name": "a", "value": "1"}, {"name": "x", "value": "theirs"}, {"name": "b", "value": "2"}])
    assert not holds(desired, [{"name": "b", "value": "2"}, {"name": "a", "value": "1"}])
    assert not holds(desired, [{"name": "a", "value": "1"}])


def test_containment_alone_misses_a_removed_field():
    # The bug: nothing we send differs, so the apply that would remove it is skipped.
    desired, live = fixture("httproute")
    del desired["spec"]["hostnames"]
    assert holds(desired, live)


# --- removal: needs_apply from real managedFields ---------------------------

@pytest.mark.parametrize("stem", KINDS)
def test_nothing_removed_needs_no_apply(stem):
    # The read-back of our own manifest, as applied: steady state, no write.
    # This also guards against false alarms from the real fieldsV1 shapes
    # (ownerReferences by uid, ports by port+protocol, env by name, labels...).
    desired, live = fixture(stem)
    assert our_entry(live)["fieldsV1"], "the fixture carries our Apply entry"
    assert removed_field(desired, live) is None
    assert not needs_apply(desired, live)
    assert not needs_apply(desired, _slim(live))


def test_no_live_object_needs_an_apply():
    desired, _ = fixture("service")
    assert needs_apply(desired, None)


def test_a_changed_value_needs_an_apply():
    desired, live = fixture("deployment")
    container(desired)["image"] = "docker.io/seldonio/mlserver:1.7.2"
    assert needs_apply(desired, live)


def test_hostnames_removed_from_an_httproute():
    desired, live = fixture("httproute")
    del desired["spec"]["hostnames"]
    assert removed_field(desired, live) == "f:spec.f:hostnames"
    assert needs_apply(desired, live)


def test_gateways_removed_from_a_virtualservice():
    desired, live = fixture("virtualservice")
    del desired["spec"]["gateways"]
    assert removed_field(desired, live) == "f:spec.f:gateways"
    assert needs_apply(desired, live)


def test_an_env_var_removed_from_a_container():
    desired, live = fixture("deployment")
    env = container(desired)["env"]
    gone = env.pop(0)
    path = removed_field(desired, live)
    assert path is not None and f'k:{{"name":"{gone["name"]}"}}' in path and "f:env" in path
    assert needs_apply(desired, live)


def test_a_label_removed():
    desired, live = fixture("service")
    del desired["metadata"]["labels"]["app.kubernetes.io/component"]
    assert removed_field(desired, live) == "f:metadata.f:labels.f:app.kubernetes.io/component"
    assert needs_apply(desired, live)


def test_an_annotation_removed():
    desired, live = fixture("deployment")
    del desired["metadata"]["annotations"]["modeldeploy.io/model-uri"]
    assert needs_apply(desired, live)


def test_a_pod_template_label_removed():
    desired, live = fixture("deployment")
    del desired["spec"]["template"]["metadata"]["labels"]["team"]
    assert removed_field(desired, live) == "f:spec.f:template.f:metadata.f:labels.f:team"


def test_an_owner_reference_replaced():
    # Keyed by uid: another owner uid is another item.
    desired, live = fixture("pdb")
    desired["metadata"]["ownerReferences"][0]["uid"] = "another-uid"
    assert needs_apply(desired, live)


def test_a_port_removed_from_a_service():
    desired, live = fixture("service")
    desired["spec"]["ports"] = []
    assert removed_field(desired, live).startswith("f:spec.f:ports.k:")


def test_a_key_dropped_from_an_atomic_selector():
    # A Service's spec.selector is an atomic map: the API server records it
    # as one leaf (f:selector: {}, as read back from the control plane), so
    # a key leaving it is no removed field, and containment still holds.
    # Found by the stateful test: switching gatewayAPI -> replicas left the
    # client Service selecting stable pods only (issue 9, invariant 4).
    desired, live = fixture("service")
    assert our_entry(live)["fieldsV1"]["f:spec"]["f:selector"] == {}
    live["spec"]["selector"] = {**desired["spec"]["selector"], "modeldeploy.io/role": "stable"}
    assert holds(desired, live) and removed_field(desired, live) is None
    assert needs_apply(desired, live)
    live["spec"]["selector"] = dict(desired["spec"]["selector"])
    assert not needs_apply(desired, live)


def test_a_port_key_matches_without_the_defaulted_protocol():
    # The API server puts a defaulted key field (a port's protocol: TCP) into
    # the item's key even when we do not send it, without an f:protocol of
    # ours (as read back from the control plane, in that shape).
    desired, live = fixture("service")
    for port in desired["spec"]["ports"]:
        del port["protocol"]
    [item] = our_entry(live)["fieldsV1"]["f:spec"]["f:ports"].values()
    del item["f:protocol"]
    assert '"protocol":"TCP"' in next(iter(our_entry(live)["fieldsV1"]["f:spec"]["f:ports"]))
    assert not needs_apply(desired, live)


def test_the_replicas_we_stopped_sending():
    desired, live = fixture("deployment")
    del desired["spec"]["replicas"]
    assert removed_field(desired, live) == "f:spec.f:replicas"


def test_a_null_counts_as_not_sent():
    desired, live = fixture("httproute")
    desired["spec"]["hostnames"] = None
    assert needs_apply(desired, live)


def test_set_items_and_indexes():
    live = {"metadata": {"managedFields": [{
        "manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "v1",
        "fieldsV1": {"f:metadata": {"f:finalizers": {"v:\"a\"": {}, "v:\"b\"": {}}},
                     "f:spec": {"f:items": {"i:1": {"f:x": {}}}}}}]},
        "spec": {"items": [{}, {"x": 1}]}}
    desired = {"apiVersion": "v1", "metadata": {"finalizers": ["b", "a"]}, "spec": {"items": [{}, {"x": 1}]}}
    assert removed_field(desired, live) is None
    assert removed_field({**desired, "metadata": {"finalizers": ["a"]}}, live) == 'f:metadata.f:finalizers.v:"b"'
    assert removed_field({**desired, "spec": {"items": [{}]}}, live) == "f:spec.f:items.i:1"


def test_only_our_apply_entry_counts():
    desired, live = fixture("deployment")
    # Fields owned by other managers (the Deployment controller's status, a
    # kubectl edit) are not ours to send.
    others = [e for e in live["metadata"]["managedFields"] if e["manager"] != FIELD_MANAGER]
    assert others, "the fixture carries another manager's entry too"
    foreign = copy.deepcopy(live)
    foreign["metadata"]["managedFields"].append({
        "manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
        "fieldsV1": {"f:metadata": {"f:labels": {"f:someone-elses": {}}}}})
    foreign["metadata"]["managedFields"].append({
        "manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "apps/v1", "subresource": "status",
        "fieldsV1": {"f:status": {"f:somethingOfOurs": {}}}})
    assert not needs_apply(desired, foreign)


def test_an_entry_written_at_another_api_version_needs_an_apply():
    desired, live = fixture("hpa")
    our_entry(live)["apiVersion"] = "autoscaling/v1"
    assert needs_apply(desired, live)


def test_without_managed_fields_containment_decides():
    desired, live = fixture("httproute")
    del live["metadata"]["managedFields"]
    del desired["spec"]["hostnames"]
    assert not needs_apply(desired, live)


# --- replicas handover ------------------------------------------------------

def test_handover_when_we_stop_sending_replicas_we_own():
    desired, live = fixture("deployment")
    autoscaled = copy.deepcopy(desired)
    del autoscaled["spec"]["replicas"]
    assert replicas_handover(autoscaled, live) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "fraud-stable", "namespace": desired["metadata"]["namespace"]},
        "spec": {"replicas": live["spec"]["replicas"]},
    }
    # From the watch cache's slimmed copy too.
    assert replicas_handover(autoscaled, _slim(live)) == replicas_handover(autoscaled, live)


def test_handover_takes_the_live_count_not_the_last_sent_one():
    desired, live = fixture("deployment")
    del desired["spec"]["replicas"]
    live["spec"]["replicas"] = 7  # e.g. already changed by hand, still ours
    assert replicas_handover(desired, live)["spec"] == {"replicas": 7}


def test_no_handover_while_we_send_replicas():
    desired, live = fixture("deployment")
    assert replicas_handover(desired, live) is None
    desired["spec"]["replicas"] = 5
    assert replicas_handover(desired, live) is None


def test_no_handover_for_replicas_we_do_not_own():
    # Applied without replicas from the start: the default and the HPA's count are not ours.
    desired, live = fixture("deployment-autoscaled")
    assert "replicas" in live["spec"] and not owns(live, ("spec", "replicas"))
    assert replicas_handover(desired, live) is None


def test_no_handover_once_handed_over():
    # After both applies our entry no longer has f:replicas.
    desired, live = fixture("deployment")
    del desired["spec"]["replicas"]
    del our_entry(live)["fieldsV1"]["f:spec"]["f:replicas"]
    live["metadata"]["managedFields"].append({
        "manager": HANDOVER_MANAGER, "operation": "Apply", "apiVersion": "apps/v1",
        "fieldsV1": {"f:spec": {"f:replicas": {}}}})
    assert replicas_handover(desired, live) is None
    assert not needs_apply(desired, live)


def test_no_handover_without_a_live_object_or_without_managed_fields():
    desired, live = fixture("deployment")
    del desired["spec"]["replicas"]
    assert replicas_handover(desired, None) is None
    del live["metadata"]["managedFields"]
    assert replicas_handover(desired, live) is None


# --- what the watch cache keeps -------------------------------------------

def our_entry(live: dict) -> dict:
    [entry] = [e for e in live["metadata"]["managedFields"]
               if e["manager"] == FIELD_MANAGER and e["operation"] == "Apply" and not e.get("subresource")]
    return entry


@pytest.mark.parametrize("stem", KINDS)
def test_the_cache_keeps_only_our_apply_entry(stem):
    _, live = fixture(stem)
    slim = _slim(live)
    assert slim["metadata"]["managedFields"] == [
        {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": live["apiVersion"],
         "fieldsV1": our_entry(live)["fieldsV1"]}]
    assert {k: v for k, v in slim["metadata"].items() if k != "managedFields"} == {
        k: v for k, v in live["metadata"].items() if k != "managedFields"}


def test_the_cache_drops_managed_fields_that_are_not_ours():
    _, live = fixture("deployment")
    live["metadata"]["managedFields"] = [e for e in live["metadata"]["managedFields"] if e["manager"] != FIELD_MANAGER]
    assert "managedFields" not in _slim(live)["metadata"]
    assert applied_entries(live["metadata"]["managedFields"]) == []


def test_the_cache_stores_children_with_our_entry():
    _, live = fixture("pdb")
    live["metadata"]["ownerReferences"][0].update(apiVersion="modeldeploy.io/v1alpha1", kind="ModelDeployment",
                                                  name="fraud")
    cache = Cache()
    key = cache.put_child(live)
    [stored] = cache.children_of(key).values()
    assert [e["manager"] for e in stored["metadata"]["managedFields"]] == [FIELD_MANAGER]
