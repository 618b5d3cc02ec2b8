"""The core reconcile, on the real control plane with the operator running:
one ModelDeployment in, a serving Deployment, Service, HPA and PDB out, and a
status that tells the truth."""
from __future__ import annotations

import copy

import yaml

from support.models import (apply_md, condition, edited, get_md, is_true, model_deployment, status_view,
                            wait_ready)
from support.waiting import holds_for, wait_until


def children(cluster, namespace):
    deployments = {d.metadata.name: d for d in cluster.apps.list_namespaced_deployment(namespace).items}
    services = {s.metadata.name: s for s in cluster.core.list_namespaced_service(namespace).items}
    return deployments, services


def test_create_becomes_ready_with_deployment_service_and_pdb(cluster, namespace, operator):
    apply_md(cluster, namespace, model_deployment("fraud", replicas=3))
    md = wait_ready(cluster, namespace, "fraud")

    status = md["status"]
    assert status["phase"] == "Ready"
    assert status["stable"]["modelVersion"] == "v1"
    assert status["stable"]["readyReplicas"] == 3
    assert status["url"] == f"http://fraud.{namespace}.svc.cluster.local"
    assert [h["modelVersion"] for h in status["history"]] == ["v1"]
    assert not is_true(md, "Reconciling") and not is_true(md, "Stalled")

    deployments, services = children(cluster, namespace)
    stable = deployments["fraud-stable"]
    assert stable.spec.replicas == 3 and stable.status.ready_replicas == 3
    assert stable.metadata.labels["modeldeploy.io/revision"] == status["stable"]["revision"]
    owner = stable.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("ModelDeployment", "fraud", md["metadata"]["uid"])
    assert "fraud" in services
    pdb = cluster.get_json("-n", namespace, "pdb", "fraud")
    assert pdb["spec"]["maxUnavailable"] == 1
    # kubectl wait, as Flux/Argo CD users script it, agrees.
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "md/fraud", "--timeout=5s")


def test_autoscaling_creates_an_hpa_that_owns_replicas(cluster, namespace, operator):
    doc = model_deployment("scaled", replicas=None,
                           autoscaling={"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60})
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "scaled")
    hpa = cluster.get_json("-n", namespace, "hpa", "scaled")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled-stable"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    # The HPA, not the operator, sets the replica count: no field fight.
    dep = cluster.get_json("-n", namespace, "deployment", "scaled-stable", "--show-managed-fields")
    managers = {f["manager"]: f for f in dep["metadata"]["managedFields"]}
    ours = managers["modeldeploy-operator"]["fieldsV1"]
    assert "f:replicas" not in ours.get("f:spec", {})
    assert dep["spec"]["replicas"] == 2


def test_scaling_updates_in_place_without_a_new_revision(cluster, namespace, operator):
    doc = model_deployment("scale-me", replicas=2)
    apply_md(cluster, namespace, doc)
    before = wait_ready(cluster, namespace, "scale-me")
    apply_md(cluster, namespace, edited(doc, replicas=4))
    after = wait_ready(cluster, namespace, "scale-me")
    wait_until(lambda: get_md(cluster, namespace, "scale-me")["status"]["stable"]["readyReplicas"] == 4,
               timeout=60, what="4 ready replicas")
    assert after["status"]["stable"]["revision"] == before["status"]["stable"]["revision"]
    assert len(after["status"]["history"]) == 1
    assert cluster.apps.read_namespaced_deployment("scale-me-stable", namespace).spec.replicas == 4


def test_drift_is_undone(cluster, namespace, operator):
    apply_md(cluster, namespace, model_deployment("drifty", replicas=2))
    md = wait_ready(cluster, namespace, "drifty")
    image = cluster.apps.read_namespaced_deployment("drifty-stable", namespace).spec.template.spec.containers[-1].image

    cluster.kubectl("-n", namespace, "delete", "service", "drifty")
    wait_until(lambda: cluster.core.read_namespaced_service("drifty", namespace), timeout=15,
               what="the deleted Service to be restored")

    cluster.kubectl("-n", namespace, "set", "image", "deployment/drifty-stable", "model-server=evil.invalid/x:1")
    wait_until(lambda: cluster.apps.read_namespaced_deployment("drifty-stable", namespace)
               .spec.template.spec.containers[-1].image == image,
               timeout=15, what="the hand-edited image to be restored")
    wait_ready(cluster, namespace, "drifty")
    assert get_md(cluster, namespace, "drifty")["status"]["stable"]["revision"] == md["status"]["stable"]["revision"]


def test_delete_garbage_collects_children(cluster, namespace, operator):
    apply_md(cluster, namespace, model_deployment("gone", replicas=2))
    wait_ready(cluster, namespace, "gone")
    cluster.kubectl("-n", namespace, "delete", "md", "gone", "--wait=false")
    wait_until(lambda: not any(children(cluster, namespace)) and not cluster.core.list_namespaced_pod(namespace).items,
               timeout=60, what="children and pods to be garbage-collected",
               describe=lambda: [list(x) for x in children(cluster, namespace)])


def test_pods_run_in_a_namespace_enforcing_restricted(cluster, namespace, operator):
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    apply_md(cluster, namespace, model_deployment("locked-down", replicas=1))
    wait_ready(cluster, namespace, "locked-down")


def test_never_ready_pods_are_not_ready_then_stalled_after_the_deadline(cluster, namespace, operator):
    doc = model_deployment("hung", replicas=2, behavior="never-ready", rollout={"progressDeadlineSeconds": 10})
    apply_md(cluster, namespace, doc)
    # Nothing has served yet: Pending, converging (kstatus Reconciling), not Ready.
    early = wait_until(lambda: is_true(m := get_md(cluster, namespace, "hung"), "Reconciling") and m,
                       timeout=30, what="Reconciling", describe=lambda: status_view(get_md(cluster, namespace, "hung")))
    assert early["status"]["phase"] == "Pending" and not is_true(early, "Ready")
    md = wait_until(lambda: is_true(m := get_md(cluster, namespace, "hung"), "Stalled") and m,
                    timeout=60, what="Stalled after the progress deadline",
                    describe=lambda: status_view(get_md(cluster, namespace, "hung")))
    assert not is_true(md, "Ready")
    assert condition(md, "Stalled")["reason"] == "ProgressDeadlineExceeded"
    assert md["status"]["phase"] == "Failed"
    assert "0/2 replicas ready" in condition(md, "Stalled")["message"]


def test_crashlooping_pods_are_never_ready_and_say_why(cluster, namespace, operator):
    apply_md(cluster, namespace, model_deployment("crashy", replicas=1, behavior="crashloop"))
    md = wait_until(lambda: "CrashLoopBackOff" in ((condition(m := get_md(cluster, namespace, "crashy"), "Ready")
                                                    or {}).get("message", "")) and m,
                    timeout=60, what="Ready=False naming the crash loop",
                    describe=lambda: status_view(get_md(cluster, namespace, "crashy")))
    assert not is_true(md, "Ready")
    holds_for(lambda: not is_true(get_md(cluster, namespace, "crashy"), "Ready"), seconds=3, what="never Ready")


def test_schema_refuses_a_bad_spec_with_a_clear_message(cluster, namespace, operator):
    both = model_deployment("both", replicas=2, autoscaling={"minReplicas": 1, "maxReplicas": 3})
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(both), check=False)
    assert proc.returncode != 0
    assert "set either spec.replicas or spec.autoscaling, not both" in proc.stderr, proc.stderr

    bad_uri = model_deployment("bad-uri")
    bad_uri["spec"]["model"]["uri"] = "ftp://models/x"
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(bad_uri), check=False)
    assert proc.returncode != 0 and "spec.model.uri" in proc.stderr, proc.stderr

    # Readiness never rests on an open port alone (issue 11).
    custom = model_deployment("custom")
    del custom["spec"]["model"]["format"]
    custom["spec"]["runtime"] = {"image": "registry.example.com/server:1"}
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(custom), check=False)
    assert proc.returncode != 0 and "spec.runtime.readinessPath: required for a custom image" in proc.stderr, \
        proc.stderr

    slow = model_deployment("slow")
    slow["spec"]["model"]["loadTimeout"] = "10 minutes"
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(slow), check=False)
    assert proc.returncode != 0 and "spec.model.loadTimeout" in proc.stderr, proc.stderr

    # Capacity mode Replace (issue 11): its own fields and their bounds.
    for name, spec, says in [
        ("surge-knobs", {"rollout": {"capacity": {"maxSurge": 1}}},
         "maxSurge and maxUnavailable apply to mode: Replace"),
        ("both-zero", {"rollout": {"capacity": {"mode": "Replace", "maxSurge": 0, "maxUnavailable": "0%"}}},
         "cannot both be 0"),
        ("too-much", {"rollout": {"capacity": {"mode": "Replace", "maxSurge": "150%"}}},
         "maxSurge must be a pod count from 0 to 10000 or a percentage"),
    ]:
        doc = model_deployment(name)
        doc["spec"].update(spec)
        proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)
        assert proc.returncode != 0 and says in proc.stderr, (name, proc.stderr)
    assert not cluster.custom.list_namespaced_custom_object("modeldeploy.io", "v1alpha1", namespace,
                                                            "modeldeployments")["items"]


def test_invalid_spec_past_the_schema_stalls_and_leaves_serving_alone(cluster, namespace, operator):
    doc = model_deployment("guarded", replicas=2)
    apply_md(cluster, namespace, doc)
    serving = wait_ready(cluster, namespace, "guarded")
    template_before = cluster.get_json("-n", namespace, "deployment", "guarded-stable")["spec"]["template"]

    # The schema cannot know that MODELDEPLOY_* variables are the operator's own;
    # the operator's validation does.
    bad = edited(doc, runtime={"env": [{"name": "MODELDEPLOY_MODEL_DIR", "value": "/tmp"}]})
    apply_md(cluster, namespace, bad)
    md = wait_until(lambda: is_true(m := get_md(cluster, namespace, "guarded"), "Stalled") and m,
                    timeout=30, what="Stalled/InvalidSpec",
                    describe=lambda: status_view(get_md(cluster, namespace, "guarded")))
    stalled = condition(md, "Stalled")
    assert stalled["reason"] == "InvalidSpec"
    assert "spec.runtime.env" in stalled["message"] and "MODELDEPLOY_" in stalled["message"]
    assert md["status"]["observedGeneration"] == md["metadata"]["generation"]
    # Serving is untouched: same template, same revision, all replicas still ready.
    live = cluster.get_json("-n", namespace, "deployment", "guarded-stable")
    assert live["spec"]["template"] == template_before
    assert md["status"]["stable"]["revision"] == serving["status"]["stable"]["revision"]
    assert live["status"].get("readyReplicas") == 2
    events = wait_until(
        lambda: [e for e in cluster.core.list_namespaced_event(namespace).items
                 if e.involved_object.name == "guarded" and e.reason == "InvalidSpec"],
        timeout=15, what="a Warning Event")
    assert len(events) == 1 and events[0].type == "Warning"

    # Fixing the spec recovers without a person touching anything else.
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "guarded")
    assert not is_true(get_md(cluster, namespace, "guarded"), "Stalled")


def test_schema_refuses_credentials_that_cannot_name_a_secret(cluster, namespace, operator):
    for name, credentials, uri, fragment in [
        ("bad-secret", {"secretName": "Model_Store"}, None,
         "spec.model.credentials.secretName must name a Secret: lowercase letters, digits, '-' and '.'"),
        ("long-secret", {"secretName": "s" * 254}, None, "spec.model.credentials.secretName: Too long"),
        ("no-secret", {}, None, "spec.model.credentials.secretName: Required value"),
        ("pvc-secret", {"secretName": "store"}, "pvc://claim/model", "a pvc:// model is mounted, not downloaded"),
    ]:
        doc = model_deployment(name)
        doc["spec"]["model"]["credentials"] = credentials
        if uri:
            doc["spec"]["model"]["uri"] = uri
        proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc), check=False)
        assert proc.returncode != 0 and fragment in proc.stderr, proc.stderr
    assert not cluster.custom.list_namespaced_custom_object("modeldeploy.io", "v1alpha1", namespace,
                                                            "modeldeployments")["items"]


def test_credentials_reach_the_storage_initializer_and_a_new_name_rolls_out(cluster, namespace, operator):
    """The Secret is the user's: it need not exist for the operator (which
    cannot read Secrets) to do its part, which is naming it to the storage
    initializer only. Another name is another pod template: a new revision."""
    doc = model_deployment("keyed", replicas=1, rollout={"steps": []})
    doc["spec"]["model"]["credentials"] = {"secretName": "model-store"}
    apply_md(cluster, namespace, doc)
    first = wait_ready(cluster, namespace, "keyed")
    pod = cluster.get_json("-n", namespace, "deployment", "keyed-stable")["spec"]["template"]["spec"]
    assert [c.get("envFrom") for c in pod["initContainers"]] == [[{"secretRef": {"name": "model-store"}}]]
    assert all("envFrom" not in c and "model-store" not in repr(c.get("env")) for c in pod["containers"])

    renamed = copy.deepcopy(doc)
    renamed["spec"]["model"]["credentials"]["secretName"] = "model-store-rotated"
    apply_md(cluster, namespace, renamed)
    wait_until(lambda: get_md(cluster, namespace, "keyed")["status"].get("stable", {}).get("revision")
               not in (None, first["status"]["stable"]["revision"]) and is_true(get_md(cluster, namespace, "keyed"),
                                                                                 "Ready"),
               timeout=90, what="the renamed Secret rolled out as a new revision",
               describe=lambda: status_view(get_md(cluster, namespace, "keyed")))
    pod = cluster.get_json("-n", namespace, "deployment", "keyed-stable")["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["envFrom"] == [{"secretRef": {"name": "model-store-rotated"}}]
