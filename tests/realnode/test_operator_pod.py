"""The operator itself as a real pod, installed the way a platform team
installs it: `kubectl apply -k manifests/overlays/local-real-node` (the
namespaced overlay, pinned to real-0, the image built on this machine by
hack/images/build.sh from the Dockerfile's recipe). Its liveness and
readiness probes pass for real, it reconciles a ModelDeployment under its own
ServiceAccount with no request refused, and killing its pod mid-rollout loses
nothing: the new pod finishes the rollout with one history entry each."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from support import real_node
from support.cluster import REPO
from support.logs import denials
from support.models import apply_md, get_md, is_true, model_deployment, status_view
from support.waiting import wait_until

OVERLAY = REPO / "manifests" / "overlays" / "local-real-node"
SYSTEM, MODELS = "modeldeploy-system", "models"  # the overlay's namespaces
LOCAL_REF = "localhost/modeldeploy/operator:local"  # what the overlay runs


@pytest.fixture
def operator_image(cluster, request) -> str:
    """The operator image (hack/images/build.sh operator: a no-op on a warm
    cache), imported into real-0 and tagged as the overlay names it."""
    real_node.require(cluster)
    show = real_node.progress_display(request)
    with show():
        proc = subprocess.run([str(real_node.IMAGES_BUILD), "operator"], stdout=subprocess.PIPE, stderr=None,
                              text=True, env={**os.environ, "PYTHON": str(REPO / ".venv" / "bin" / "python")})
    assert proc.returncode == 0, f"hack/images/build.sh operator failed ({proc.returncode}); see its progress above"
    built = json.loads(proc.stdout)["images"]["operator"]
    started = time.monotonic()
    imported = real_node.ctr(cluster, "images", "import", built["archive"], timeout=600)
    assert imported.returncode == 0, imported.stderr
    real_node.ctr(cluster, "images", "rm", LOCAL_REF)  # a tag left by an earlier run may name an older build
    tagged = real_node.ctr(cluster, "images", "tag", built["ref"], LOCAL_REF)
    assert tagged.returncode == 0, tagged.stderr
    with show():
        print(f"\noperator image {built['ref']} imported into {real_node.NAME} as {LOCAL_REF} "
              f"in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return built["ref"]


@pytest.fixture
def installed(cluster, operator_image):
    """`kubectl apply -k` the overlay; removed afterwards (not the CRD, which
    the whole session shares and the overlay only re-applies unchanged)."""
    cluster.kubectl("create", "namespace", MODELS)
    applied = cluster.kubectl("apply", "-k", str(OVERLAY), timeout=120)
    yield applied.stdout
    cluster.kubectl("delete", "namespace", MODELS, SYSTEM, "--wait=false", check=False)
    for kind_name in ("clusterrole/modeldeploy-operator", "clusterrole/modeldeploy-operator-scanning",
                      "clusterrolebinding/modeldeploy-operator-scanning"):
        cluster.kubectl("delete", kind_name, "--ignore-not-found", check=False)


def operator_pods(cluster):
    return cluster.core.list_namespaced_pod(SYSTEM, label_selector="app.kubernetes.io/name=modeldeploy-operator").items


def ready(pod) -> bool:
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or ())


def test_the_operator_runs_as_a_pod_from_the_manifests_and_a_killed_pod_loses_nothing(cluster, installed):
    started = time.monotonic()
    report = lambda: (real_node.pod_report(cluster, SYSTEM, "app.kubernetes.io/name=modeldeploy-operator"),  # noqa: E731
                      cluster.kubectl("-n", MODELS, "get", "md", "-o", "wide", check=False).stdout)
    [pod] = wait_until(lambda: [p for p in operator_pods(cluster) if ready(p)] or None, timeout=180,
                       what="the operator pod Ready (its readiness probe passing)", describe=report)
    assert pod.spec.node_name == real_node.NAME
    assert pod.spec.service_account_name == "modeldeploy-operator"
    up = time.monotonic()

    # A model on the simulated nodes (kwok): the pod reconciles it.
    doc = model_deployment("fraud", version="v1", replicas=2,
                           rollout={"steps": [{"setWeight": 50}, {"pause": {}}]})
    apply_md(cluster, MODELS, doc)

    def ready_on(version):
        md = get_md(cluster, MODELS, "fraud")
        return (is_true(md, "Ready") and (md.get("status", {}).get("stable") or {}).get("modelVersion") == version
                and md["status"].get("observedGeneration") == md["metadata"]["generation"] and md)

    wait_until(lambda: ready_on("v1"), timeout=120, what="fraud Ready on v1, reconciled by the pod", describe=report)
    # v2 as a canary, held by the open pause.
    doc["spec"]["model"].update(version="v2", uri="s3://models/fraud/v2")
    apply_md(cluster, MODELS, doc)
    wait_until(lambda: get_md(cluster, MODELS, "fraud").get("status", {}).get("phase") == "Paused", timeout=120,
               what="fraud Paused on the v2 canary", describe=report)

    # Kill the pod mid-rollout; its Deployment starts another, which takes over.
    cluster.kubectl("-n", SYSTEM, "delete", "pod", pod.metadata.name, "--grace-period=0", "--force", check=False)
    [new] = wait_until(lambda: [p for p in operator_pods(cluster) if ready(p) and p.metadata.name != pod.metadata.name]
                       or None, timeout=180, what="a new operator pod Ready", describe=report)
    cluster.kubectl("-n", MODELS, "annotate", "md", "fraud", "modeldeploy.io/promote=true")
    md = wait_until(lambda: ready_on("v2"), timeout=120, what="fraud promoted to v2 by the new pod", describe=report)
    assert [(h["modelVersion"], h["result"]) for h in md["status"]["history"]] == [("v1", "Deployed"),
                                                                                  ("v2", "Promoted")], status_view(md)
    assert "modeldeploy.io/promote" not in (md["metadata"].get("annotations") or {})

    # The probes passed for real: both pods turned Ready, and the new one was never restarted by its liveness probe.
    [new] = [p for p in operator_pods(cluster) if p.metadata.name == new.metadata.name]
    assert new.status.container_statuses[0].restart_count == 0, report()
    # Under its own ServiceAccount, nothing refused: its log has no 403.
    log = cluster.kubectl("-n", SYSTEM, "logs", new.metadata.name, timeout=30).stdout
    assert not denials(log), denials(log)
    print(f"\noperator as a pod: Ready {up - started:.0f} s after the apply; v1 deployed, the pod killed at the "
          f"v2 pause, the new pod promoted v2; {time.monotonic() - started:.0f} s in all")
