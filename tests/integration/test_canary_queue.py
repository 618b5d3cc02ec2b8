"""--max-concurrent-canaries on the local control plane (issue 11): a change
applied to 20 ModelDeployments at once, with an operator that allows 5
canaries at a time, never runs more than 5 canary Deployments; the others
wait in line with their place in the status, stable serving, and every one
is promoted in the end (Flagger #1069: many canaries at once, no capacity)."""
from __future__ import annotations


import yaml

from support.canary import model_v
from support.models import get_md, model_deployment
from support.process import OperatorProcess
from support.sampling import ChangeRecorder
from support.waiting import wait_until

MODELS, LIMIT = 20, 5


def apply_all(cluster, namespace: str, docs: list[dict]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(docs))


def stages(cluster, namespace: str) -> dict[str, str]:
    items = cluster.custom.list_namespaced_custom_object("modeldeploy.io", "v1alpha1", namespace,
                                                         "modeldeployments")["items"]
    return {md["metadata"]["name"]: ((md.get("status") or {}).get("rollout") or {}).get("stage", "Stable")
            for md in items}


def canary_deployments(cluster, namespace: str) -> int:
    """Canary Deployments that exist and are not being deleted: what takes capacity."""
    found = cluster.apps.list_namespaced_deployment(namespace, label_selector="modeldeploy.io/role=canary").items
    return len([d for d in found if d.metadata.deletion_timestamp is None])


def test_twenty_canaries_with_a_limit_of_five_never_run_more_than_five(cluster, own_namespace, tmp_path):
    ns = own_namespace
    docs = [model_deployment(f"m{i:02d}", replicas=1, rollout={"steps": [{"setWeight": 50},
                                                                         {"pause": {"duration": "3s"}}]})
            for i in range(MODELS)]
    with OperatorProcess(cluster, ns, tmp_path / "operator.log",
                         extra_args=("--max-concurrent-canaries", str(LIMIT))) as op:
        apply_all(cluster, ns, docs)
        wait_until(lambda: all(md.get("status", {}).get("phase") == "Ready" for md in
                               cluster.custom.list_namespaced_custom_object(
                                   "modeldeploy.io", "v1alpha1", ns, "modeldeployments")["items"]),
                   timeout=120, what=f"{MODELS} models Ready on v1", describe=lambda: stages(cluster, ns))

        with ChangeRecorder(lambda: canary_deployments(cluster, ns), period=0.1) as deployments, \
                ChangeRecorder(lambda: stages(cluster, ns), period=0.2) as recorded:
            apply_all(cluster, ns, [model_v(doc, "v2") for doc in docs])
            queued = wait_until(lambda: (m := get_md(cluster, ns, "m19"))["status"].get("rollout", {}).get("stage")
                                == "Queued" and m, timeout=30, what="a model waiting in line",
                                describe=lambda: stages(cluster, ns))

            def all_promoted():
                items = cluster.custom.list_namespaced_custom_object(
                    "modeldeploy.io", "v1alpha1", ns, "modeldeployments")["items"]
                return all(md["status"].get("phase") == "Ready" and md["status"]["stable"]["modelVersion"] == "v2"
                           for md in items)

            wait_until(all_promoted, timeout=300, what=f"all {MODELS} promoted to v2",
                       describe=lambda: (stages(cluster, ns), op.log.read_text()[-2000:]))
    ready = next(c for c in queued["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "CanaryQueued", ready
    assert "waiting for a canary slot" in ready["message"] and "in line, 5 canaries at most at once" in ready["message"]
    most_deployments = max(deployments.seen)
    most_in_flight = max(sum(stage in ("Canary", "Promoting") for stage in seen.values()) for seen in recorded.seen)
    most_waiting = max(sum(stage == "Queued" for stage in seen.values()) for seen in recorded.seen)
    assert most_deployments <= LIMIT, deployments.seen
    assert most_in_flight <= LIMIT, [s for s in recorded.seen if sum(v in ("Canary", "Promoting") for v in s.values()) > LIMIT][:2]
    assert most_deployments == LIMIT and most_waiting >= MODELS - LIMIT - 1, (most_deployments, most_waiting)
    histories = [md["status"]["history"] for md in cluster.custom.list_namespaced_custom_object(
        "modeldeploy.io", "v1alpha1", ns, "modeldeployments")["items"]]
    assert all([h["result"] for h in history] == ["Deployed", "Promoted"] for history in histories), histories
    print(f"\n{MODELS} canaries, at most {LIMIT} at once: at most {most_deployments} canary Deployments and "
          f"{most_in_flight} canaries in flight seen, {most_waiting} waiting at most")
