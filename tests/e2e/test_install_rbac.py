"""The RBAC in manifests/ is enough: the operator, run as the ServiceAccount
the manifests create with a token the API server mints for it, takes a
ModelDeployment through a Gateway API canary to promotion, autoscales it
(HPA, then KEDA), scales it back and takes it off Gateway API, and never receives a 403 --
while it still cannot read a Secret, not even the one the ModelDeployment
names for its storage initializer. (That it is no more than enough was
shown by removing one verb at a time; see the README's Permissions.)"""
from __future__ import annotations

import copy
import uuid

import pytest

from support.cluster import REPO, service_account_kubeconfig
from support.canary import GATEWAY, canary_exists, model_v, route_weights, wait_phase
from support.install import (ACCOUNT, SYSTEM_NAMESPACE, apply_docs, audit_entries, compose, delete_docs,
                             relocate)
from support.logs import denials
from support.models import apply_md, get_md, is_true, model_deployment, status_view, wait_ready
from support.operator import install_crd
from support.process import OperatorProcess
from support.waiting import wait_until

def install_as_service_account(cluster, tmp_path, components):
    suffix = f"-{uuid.uuid4().hex[:6]}"
    system_ns, watched_ns = f"mdsys{suffix}", f"rbac{suffix}"
    docs = compose(cluster, tmp_path / "install", resources=["overlays/namespaced"], components=components)
    rbac = [d for d in relocate(docs, system_namespace=system_ns, suffix=suffix, watched={"models": watched_ns})
            if d["kind"] in ("Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "RoleBinding")]
    install_crd(cluster)  # the session's copy; manifests/base/crd is checked equal to it by a unit test
    cluster.kubectl("create", "namespace", watched_ns)
    apply_docs(cluster, rbac)
    kubeconfig = service_account_kubeconfig(cluster, system_ns, ACCOUNT, tmp_path / "sa.kubeconfig")
    return {"namespace": watched_ns, "kubeconfig": kubeconfig, "docs": rbac,
            "user": f"system:serviceaccount:{system_ns}:{ACCOUNT}"}


def uninstall(cluster, installed):
    cluster.kubectl("delete", "namespace", installed["namespace"], "--wait=false", check=False)
    delete_docs(cluster, installed["docs"])


@pytest.fixture
def installed_as_service_account(cluster, tmp_path):
    """The namespaced overlay plus the Gateway API component -- the rules of
    manifests/base's ClusterRole with the with-gateway-api verbs, bound in one
    watched namespace -- moved to throwaway names. The operator runs as a
    process (not the Deployment: there is no image here) with the SA's token."""
    installed = install_as_service_account(cluster, tmp_path, ["components/gateway-api"])
    yield installed
    uninstall(cluster, installed)



def writes_without_a_denial(cluster, log, mark, user: str) -> list[dict]:
    """The audit log's writes by `user` since `mark`, after checking that
    neither the operator's log nor the API server saw a 403."""
    text = log.read_text()
    assert not denials(text), denials(text)
    writes = audit_entries(cluster, mark, user)
    denied = [f"{e['verb']} {e['requestURI']}" for e in writes if e.get("responseStatus", {}).get("code") == 403]
    assert denied == []
    return writes

def test_operator_as_its_service_account_rolls_out_without_a_403(cluster, installed_as_service_account, tmp_path):
    sa = installed_as_service_account
    ns, name = sa["namespace"], "least"
    assert SYSTEM_NAMESPACE not in ns
    log = tmp_path / "operator.log"
    mark = (cluster.dir / "logs" / "audit.log").stat().st_size
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout={
        "steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}, {"setWeight": 80}, {"pause": {}}]})
    # The user's Secret for the model store: named to the storage initializer, never read by the operator.
    doc["spec"]["model"]["credentials"] = {"secretName": "model-store"}
    cluster.kubectl("-n", ns, "create", "secret", "generic", "model-store", "--from-literal=AWS_ACCESS_KEY_ID=k")

    with OperatorProcess(cluster, ns, log, kubeconfig=sa["kubeconfig"]) as op:
        apply_md(cluster, ns, doc)
        wait_ready(cluster, ns, name)
        assert route_weights(cluster, ns, name) == (100, 0)
        pod = cluster.get_json("-n", ns, "deployment", f"{name}-stable")["spec"]["template"]["spec"]
        assert pod["initContainers"][0]["envFrom"] == [{"secretRef": {"name": "model-store"}}]

        # The canary: steps, a pause for approval, then the promote annotation
        # (which the operator consumes: a patch of the ModelDeployment).
        apply_md(cluster, ns, model_v(doc, "v2"))
        wait_phase(cluster, ns, name, "Paused")
        assert route_weights(cluster, ns, name) == (20, 80)
        cluster.kubectl("-n", ns, "annotate", "md", name, "modeldeploy.io/promote=true")
        wait_until(lambda: is_true(m := get_md(cluster, ns, name), "Ready")
                   and m["status"]["stable"]["modelVersion"] == "v2", timeout=60, what="promotion",
                   describe=lambda: status_view(get_md(cluster, ns, name)))
        wait_until(lambda: not canary_exists(cluster, ns, name), timeout=30, what="the canary pruned")

        # The other children: an HPA appears, then goes with the PDB.
        autoscaled = model_v(doc, "v2", replicas=None)
        del autoscaled["spec"]["replicas"]
        autoscaled["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 4, "targetCPUUtilizationPercentage": 70}
        # Capacity mode Replace: the HPA scales the ModelDeployment, whose
        # scale the operator sets once (modeldeployments/scale).
        autoscaled["spec"]["rollout"] = {**autoscaled["spec"]["rollout"], "capacity": {"mode": "Replace"}}
        apply_md(cluster, ns, autoscaled)
        wait_until(lambda: cluster.get_json("-n", ns, "hpa", name), timeout=30, what="the HPA")
        wait_until(lambda: get_md(cluster, ns, name)["spec"]["autoscaling"].get("replicas") == 2, timeout=30,
                   what="the model's scale set", describe=lambda: get_md(cluster, ns, name)["spec"])
        # engine KEDA: a ScaledObject in the HPA's place, the HPA and PDB
        # pruned (KEDA's CRDs are installed; KEDA itself does not run here).
        keda = copy.deepcopy(autoscaled)
        keda["spec"]["autoscaling"] = {"minReplicas": 0, "maxReplicas": 4, "engine": "KEDA", "keda": {"triggers": [
            {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "70"}}]}}
        keda["spec"]["rollout"] = {k: v for k, v in keda["spec"]["rollout"].items() if k != "capacity"}
        apply_md(cluster, ns, keda)
        wait_until(lambda: cluster.kubectl("-n", ns, "get", "hpa,pdb,scaledobject", "-o", "name").stdout.split()
                   == [f"scaledobject.keda.sh/{name}"], timeout=30, what="the ScaledObject, the HPA and PDB pruned")
        single = model_v(doc, "v2", replicas=1)
        apply_md(cluster, ns, single)
        wait_until(lambda: not cluster.kubectl("-n", ns, "get", "hpa,pdb,scaledobject", "-o", "name").stdout.strip(),
                   timeout=30, what="the ScaledObject pruned")
        # Off Gateway API: the HTTPRoute is pruned.
        unrouted = copy.deepcopy(single)
        del unrouted["spec"]["traffic"]
        apply_md(cluster, ns, unrouted)
        wait_until(lambda: not cluster.kubectl("-n", ns, "get", "httproute", "-o", "name").stdout.strip(),
                   timeout=30, what="the HTTPRoute pruned")
        wait_ready(cluster, ns, name)
        # A denied watch is retried a few times and then stops kopf for good.
        assert op.proc.poll() is None, log.read_text()[-3000:]

    writes = writes_without_a_denial(cluster, log, mark, sa["user"])
    # The audit check means something: this identity did make the writes.
    verbs = {(e["verb"], "/".join(filter(None, (e["objectRef"]["resource"], e["objectRef"].get("subresource")))))
             for e in writes}
    assert {("patch", "deployments"), ("delete", "deployments"), ("patch", "httproutes"),
            ("patch", "modeldeployments"), ("patch", "modeldeployments/status"), ("create", "events"),
            ("patch", "modeldeployments/scale"),
            ("patch", "horizontalpodautoscalers"), ("delete", "horizontalpodautoscalers"),
            ("delete", "poddisruptionbudgets"), ("delete", "httproutes"),
            ("patch", "scaledobjects"), ("delete", "scaledobjects")} <= verbs, sorted(verbs)


def test_service_account_cannot_read_secrets(cluster, installed_as_service_account):
    sa = installed_as_service_account
    for scope in (("-n", sa["namespace"]), ("-A",)):
        proc = cluster.kubectl("get", "secrets", *scope, kubeconfig=sa["kubeconfig"], check=False)
        assert proc.returncode != 0 and "Forbidden" in proc.stderr, proc.stderr


def test_standby_peering_needs_only_the_peering_component(cluster, tmp_path):
    """With --peering, kopf keeps a keep-alive in the namespace's KopfPeering
    and the operator reads it before acting: components/peering is enough."""
    installed = install_as_service_account(cluster, tmp_path, ["components/peering"])
    ns, log = installed["namespace"], tmp_path / "operator.log"
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds" / "kopf-peering.yaml"))
        cluster.apply(ns, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": "modeldeploy"}})
        mark = (cluster.dir / "logs" / "audit.log").stat().st_size
        args = ("--peering", "modeldeploy", "--priority", "100")
        with OperatorProcess(cluster, ns, log, extra_args=args, kubeconfig=installed["kubeconfig"]):
            apply_md(cluster, ns, model_deployment("peered", replicas=1))
            wait_ready(cluster, ns, "peered")
            peering = cluster.get_json("-n", ns, "kopfpeering", "modeldeploy")
            assert [p["priority"] for p in (peering.get("status") or {}).values()] == [100], peering.get("status")
    finally:
        uninstall(cluster, installed)
    writes_without_a_denial(cluster, log, mark, installed["user"])


def test_smoke_check_jobs_need_only_the_job_verbs_granted(cluster, installed_as_service_account, tmp_path):
    """Issue 12 item 4: the operator as its ServiceAccount creates a check's
    Job (server-side apply: patch, create), watches it, and deletes the one a
    canary no longer waits on, without a 403; batch/jobs is granted exactly
    list, watch, create, patch and delete."""
    sa = installed_as_service_account
    ns, name = sa["namespace"], "checked"
    log = tmp_path / "operator.log"
    mark = (cluster.dir / "logs" / "audit.log").stat().st_size

    def check(behavior, finish_after):
        return {"name": "predict", "at": "PreRollout", "timeout": "2m", "job": {"template": {"template": {
            "metadata": {"labels": {"sim.modeldeploy.io/behavior": behavior},
                         "annotations": {"sim.modeldeploy.io/finish-after": finish_after}},
            "spec": {"containers": [{"name": "smoke", "image": "python:3.12-slim"}]}}}}}

    def jobs():
        return [j["metadata"]["name"] for j in cluster.get_json("-n", ns, "jobs")["items"]]

    steps = [{"setWeight": 50}, {"pause": {"duration": "1s"}}]
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout={"steps": steps})
    with OperatorProcess(cluster, ns, log, kubeconfig=sa["kubeconfig"]) as op:
        apply_md(cluster, ns, doc)
        wait_ready(cluster, ns, name)
        # A check that runs long, then the spec goes back to stable: its Job is deleted.
        apply_md(cluster, ns, model_v(doc, "v2", rollout={"steps": steps, "checks": [check("succeed", "300s")]}))
        wait_until(lambda: get_md(cluster, ns, name)["status"].get("phase") == "CheckRunning", timeout=60,
                   what="the check running", describe=lambda: status_view(get_md(cluster, ns, name)))
        [running] = jobs()
        apply_md(cluster, ns, doc)
        wait_until(lambda: running not in jobs(), timeout=30, what="the abandoned check Job deleted")
        # A check that passes: promoted.
        apply_md(cluster, ns, model_v(doc, "v3", rollout={"steps": steps, "checks": [check("succeed", "1s")]}))
        wait_until(lambda: is_true(m := get_md(cluster, ns, name), "Ready") and m["status"]["stable"]["modelVersion"]
                   == "v3", timeout=90, what="v3 promoted", describe=lambda: status_view(get_md(cluster, ns, name)))
        assert op.proc.poll() is None, log.read_text()[-3000:]

    writes = writes_without_a_denial(cluster, log, mark, sa["user"])
    verbs = {e["verb"] for e in writes if e["objectRef"]["resource"] == "jobs"}
    assert {"patch", "delete"} <= verbs, verbs
    rules = [r for d in sa["docs"] if d["kind"] == "ClusterRole" for r in d.get("rules", [])
             if "jobs" in r.get("resources", [])]
    assert rules == [{"apiGroups": ["batch"], "resources": ["jobs"],
                      "verbs": ["list", "watch", "create", "patch", "delete"]}], rules
