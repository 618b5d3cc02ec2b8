"""The simulated kubelet (kwok) behind the real scheduler and controllers:
Deployments become Available, and a pod label chooses how pods misbehave."""
from __future__ import annotations


from support.waiting import holds_for, wait_until


def deployment(name: str, replicas: int = 3, labels: dict | None = None, annotations: dict | None = None) -> dict:
    pod_labels = {"app": name, **(labels or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": annotations or {}},
                "spec": {"containers": [{"name": "server", "image": "example.invalid/model-server:1"}]},
            },
        },
    }


def pods_of(cluster, namespace, app):
    return cluster.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items


def pod_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def summary(pods):
    return [(p.metadata.name, p.status.phase, pod_ready(p),
             [(c.restart_count, c.state.waiting.reason if c.state and c.state.waiting else None)
              for c in (p.status.container_statuses or [])]) for p in pods]


def test_deployment_becomes_available_with_three_ready_pods(cluster, namespace):
    cluster.apply(namespace, deployment("plain"))
    dep = wait_until(
        lambda: (d := cluster.apps.read_namespaced_deployment("plain", namespace)).status.ready_replicas == 3 and d,
        timeout=60, what="3 ready replicas",
        describe=lambda: cluster.apps.read_namespaced_deployment("plain", namespace).status)
    available = {c.type: c.status for c in dep.status.conditions}["Available"]
    assert available == "True"
    pods = pods_of(cluster, namespace, "plain")
    assert len(pods) == 3 and all(pod_ready(p) and p.status.phase == "Running" for p in pods)
    assert all(p.spec.node_name and p.status.pod_ip for p in pods), summary(pods)
    # kubectl's own view agrees (the same command a user would run).
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Available", "deployment/plain", "--timeout=10s")


def test_never_ready_pods_run_but_never_become_ready(cluster, namespace):
    cluster.apply(namespace, deployment("stuck", labels={"sim.modeldeploy.io/behavior": "never-ready"}))
    wait_until(lambda: len(pods := pods_of(cluster, namespace, "stuck")) == 3
               and all(p.status.phase == "Running" for p in pods),
               timeout=60, what="3 running pods", describe=lambda: summary(pods_of(cluster, namespace, "stuck")))
    # Ordinary pods turn Ready within 1.5s of running; these must stay not-ready well past that.
    holds_for(lambda: not any(pod_ready(p) for p in pods_of(cluster, namespace, "stuck")),
              seconds=5, what="no pod Ready", describe=lambda: summary(pods_of(cluster, namespace, "stuck")))
    dep = cluster.apps.read_namespaced_deployment("stuck", namespace)
    assert not dep.status.ready_replicas
    assert {c.type: c.status for c in dep.status.conditions}.get("Available") == "False"
    for pod in pods_of(cluster, namespace, "stuck"):
        assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "False"
        assert all(not c.ready for c in pod.status.container_statuses)


def test_crashloop_pods_show_growing_restarts(cluster, namespace):
    cluster.apply(namespace, deployment("crashy", replicas=1, labels={"sim.modeldeploy.io/behavior": "crashloop"}))

    def restarts():
        pods = pods_of(cluster, namespace, "crashy")
        statuses = pods[0].status.container_statuses if pods else None
        return statuses[0] if statuses else None

    first = wait_until(restarts, timeout=60, what="a container status")
    assert first.state.waiting.reason == "CrashLoopBackOff"
    grown = wait_until(lambda: (s := restarts()) and s.restart_count >= first.restart_count + 2 and s,
                       timeout=60, what="restartCount to grow by 2", describe=restarts)
    assert not grown.ready
    assert grown.last_state.terminated.exit_code == 1


def test_ready_after_annotation_delays_readiness(cluster, namespace):
    cluster.apply(namespace, deployment("slow", replicas=1, annotations={"sim.modeldeploy.io/ready-after": "4s"}))
    pod = wait_until(lambda: (ps := pods_of(cluster, namespace, "slow")) and pod_ready(ps[0]) and ps[0],
                     timeout=60, what="the slow pod to become Ready")
    ready_at = next(c.last_transition_time for c in pod.status.conditions if c.type == "Ready")
    waited = (ready_at - pod.metadata.creation_timestamp).total_seconds()
    assert waited >= 4, f"Ready {waited:.1f}s after creation; the annotation asked for 4s"


def test_deleting_a_deployment_garbage_collects_replicasets_and_pods(cluster, namespace):
    cluster.apply(namespace, deployment("doomed", replicas=2))
    wait_until(lambda: len(pods_of(cluster, namespace, "doomed")) == 2, timeout=60, what="2 pods")
    rs = cluster.apps.list_namespaced_replica_set(namespace).items
    assert rs and rs[0].metadata.owner_references[0].kind == "Deployment"
    cluster.kubectl("-n", namespace, "delete", "deployment", "doomed", "--wait=false")
    wait_until(lambda: not cluster.apps.list_namespaced_replica_set(namespace).items
               and not pods_of(cluster, namespace, "doomed"),
               timeout=60, what="ReplicaSets and pods to be garbage-collected",
               describe=lambda: (len(cluster.apps.list_namespaced_replica_set(namespace).items),
                                 summary(pods_of(cluster, namespace, "doomed"))))
