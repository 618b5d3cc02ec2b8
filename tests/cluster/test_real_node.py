"""The real node next to the kwok ones: real-0 runs real containers
(containerd, runc, a bridge CNI) for the pods that select it and tolerate
its taint, kube-proxy makes their ClusterIP Service answer from this host,
and every other pod stays on the kwok nodes. A second cluster's real node
runs beside the session's and `hack/cluster.sh down` removes all of it and
nothing of the other's."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import urllib.request
from pathlib import Path

from support import real_node
from support.cluster import Cluster, control_plane_lock, read_ports, start_cluster, stop_cluster
from support.waiting import holds_for, wait_until

CLAIMS = Path("/run/modeldeploy/real-nodes")


def pods_of(cluster, namespace, app):
    return cluster.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items


def ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def describe(cluster, namespace, app):
    return [(p.metadata.name, p.spec.node_name, p.status.phase, p.status.pod_ip,
             [(c.type, c.status, c.reason, c.message) for c in (p.status.conditions or []) if c.status != "True"],
             [(s.name, s.state.waiting.reason if s.state.waiting else None, s.restart_count)
              for s in (p.status.container_statuses or [])])
            for p in pods_of(cluster, namespace, app)]


def ready_pod(cluster, namespace, app, timeout=90):
    return wait_until(lambda: (ps := pods_of(cluster, namespace, app)) and ready(ps[0]) and ps[0],
                      timeout=timeout, what=f"a Ready {app} pod on {real_node.NAME}",
                      describe=lambda: describe(cluster, namespace, app))


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return resp.read().decode()


def test_real_0_is_a_labelled_tainted_node_kwok_does_not_manage(cluster):
    node = real_node.require(cluster)
    assert node["metadata"]["labels"].get(real_node.KIND_LABEL[0]) == real_node.KIND_LABEL[1], node["metadata"]
    assert {"key": real_node.TAINT, "value": "true", "effect": "NoSchedule"} in node["spec"].get("taints", [])
    # A kubelet reports it (kwok's nodes say "fake" and carry its annotation).
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"].startswith("v1.") and info["containerRuntimeVersion"].startswith("containerd://"), info
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True", node["status"]["conditions"]


def test_a_pod_that_tolerates_the_taint_runs_a_real_container_on_real_0(cluster, namespace):
    real_node.require(cluster)
    cluster.apply(namespace, real_node.hello_deployment("hello"))
    pod = ready_pod(cluster, namespace, "hello")
    assert pod.spec.node_name == real_node.NAME
    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(cluster.ports["POD_CIDR"]), pod.status.pod_ip
    status = pod.status.container_statuses[0]
    assert status.container_id.startswith("containerd://") and status.state.running, status
    assert status.image == real_node.HELLO_IMAGE, status.image
    # The process inside answers through the API server and the kubelet too.
    out = cluster.kubectl("-n", namespace, "exec", pod.metadata.name, "--", "/hello", "--port-in-use", check=False)
    assert "address already in use" in out.stdout + out.stderr, out


def test_a_cluster_ip_service_answers_an_http_request_from_the_host(cluster, namespace):
    real_node.require(cluster)
    cluster.apply(namespace, [real_node.hello_deployment("web"), real_node.service("web")])
    pod = ready_pod(cluster, namespace, "web")
    ip = cluster.core.read_namespaced_service("web", namespace).spec.cluster_ip
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(cluster.ports["SERVICE_CIDR"]), ip
    # kube-proxy programs the Service a moment after the endpoints appear.
    answer = wait_until(lambda: get(f"http://{ip}/"), timeout=30, what=f"an answer from http://{ip}/")
    assert answer == f"hello from {pod.metadata.name}\n"


def test_a_pod_without_the_toleration_never_lands_on_real_0(cluster, namespace):
    real_node.require(cluster)
    # Selecting the node is not enough: the taint keeps it Pending.
    cluster.apply(namespace, real_node.hello_deployment("untolerated", real=False))
    # And a plain workload spreads over the kwok nodes only.
    cluster.apply(namespace, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "plain"},
        "spec": {"replicas": 8, "selector": {"matchLabels": {"app": "plain"}},
                 "template": {"metadata": {"labels": {"app": "plain"}},
                              "spec": {"containers": [{"name": "c", "image": "example.invalid/model-server:1"}]}}}})
    unschedulable = wait_until(
        lambda: (ps := pods_of(cluster, namespace, "untolerated")) and next(
            (c for c in ps[0].status.conditions or [] if c.type == "PodScheduled" and c.reason == "Unschedulable"), None),
        timeout=60, what="the untolerated pod to be reported Unschedulable",
        describe=lambda: describe(cluster, namespace, "untolerated"))
    # The one node it selects (real-0) is refused for its taint (the scarce
    # GPU pool's two nodes are tainted too, and counted with it).
    assert "node(s) had untolerated taint" in unschedulable.message, unschedulable.message
    wait_until(lambda: len([p for p in pods_of(cluster, namespace, "plain") if p.spec.node_name]) == 8,
               timeout=60, what="8 plain pods scheduled", describe=lambda: describe(cluster, namespace, "plain"))
    nodes = {p.spec.node_name for p in pods_of(cluster, namespace, "plain")}
    assert real_node.NAME not in nodes and all(n.startswith("kwok-node-") for n in nodes), nodes
    holds_for(lambda: not any(p.spec.node_name for p in pods_of(cluster, namespace, "untolerated")),
              seconds=3, what="the untolerated pod staying unscheduled",
              describe=lambda: describe(cluster, namespace, "untolerated"))


def _machine_state(ports: dict) -> dict:
    """What a real node holds on the machine outside its cluster directory."""
    n = ports["REAL_NODE_INDEX"]
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    return {
        "netns": Path(f"/run/netns/{ports['NODE_NETNS']}").exists(),
        "veth": Path(f"/sys/class/net/mdveth{n}").exists(),
        "routes": [r for r in routes.splitlines() if ports["POD_CIDR"] in r or ports["SERVICE_CIDR"] in r],
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob(f"*/{ports['NODE_CGROUP']}")),
        "claim": (CLAIMS / n).is_symlink(),
    }


def test_a_second_cluster_runs_its_own_real_node_and_down_removes_all_of_it(cluster, namespace, tmp_path_factory):
    """A throwaway cluster beside the session's: its real node gets its own
    index (namespace, bridge, CIDRs, cgroup), serves a pod, and `down`
    leaves no process, mount, namespace, link, route, iptables chain or
    cgroup of it behind, while the session's real-0 keeps serving."""
    real_node.require(cluster)
    cluster.apply(namespace, [real_node.hello_deployment("neighbour"), real_node.service("neighbour")])
    ours_ip = cluster.core.read_namespaced_service("neighbour", namespace).spec.cluster_ip

    other_dir = tmp_path_factory.mktemp("second") / "cluster"
    with control_plane_lock(exclusive=False):  # as test_demo's: no chaos test must absorb a start
        start_cluster(other_dir)
    try:
        other = Cluster(dir=other_dir, started_here=True)
        real_node.require(other)
        ports = read_ports(other_dir)
        assert ports["REAL_NODE_INDEX"] != cluster.ports["REAL_NODE_INDEX"]
        for key in ("POD_CIDR", "SERVICE_CIDR", "NODE_NETNS", "NODE_CGROUP"):
            assert ports[key] != cluster.ports[key], key
        other.kubectl("create", "namespace", "t")
        # A bare Deployment: its ReplicaSet retries until the new namespace has its ServiceAccount.
        other.apply("t", [real_node.hello_deployment("hello"), real_node.service("hello")])
        pod = ready_pod(other, "t", "hello")
        ip = other.core.read_namespaced_service("hello", "t").spec.cluster_ip
        assert wait_until(lambda: get(f"http://{ip}/"), timeout=30, what=f"an answer from http://{ip}/") \
            == f"hello from {pod.metadata.name}\n"
        chains = subprocess.run(["ip", "netns", "exec", ports["NODE_NETNS"], "iptables-save"],
                                capture_output=True, text=True, check=True).stdout
        assert "KUBE-SERVICES" in chains and ip in chains
        before = _machine_state(ports)
        assert before["netns"] and before["veth"] and before["cgroups"] and before["claim"] and before["routes"], before
        pids = [int(p.read_text()) for p in (other_dir / "pids").glob("*.pid")]
        assert {p.stem for p in (other_dir / "pids").glob("*.pid")} >= {"containerd", "kubelet", "kube-proxy"}
        in_cgroup = [int(x) for f in (Path("/sys/fs/cgroup/pids") / ports["NODE_CGROUP"]).rglob("cgroup.procs")
                     for x in f.read_text().split()]
        assert len(in_cgroup) >= 5, in_cgroup  # containerd, kubelet, kube-proxy, a shim, pause, hello
    finally:
        with control_plane_lock(exclusive=False):
            stop_cluster(other_dir)

    alive = [p for p in pids + in_cgroup if Path(f"/proc/{p}").exists()]
    assert not alive, [(p, Path(f"/proc/{p}/cmdline").read_bytes()[:100]) for p in alive]
    after = _machine_state(ports)
    assert after == {"netns": False, "veth": False, "routes": [], "cgroups": [], "claim": False}, after
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(other_dir) in line]
    assert not mounts, mounts
    host_rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    assert ports["POD_CIDR"] not in host_rules and f"mdbr{ports['REAL_NODE_INDEX']}" not in host_rules
    assert not other_dir.exists()

    # The session's real node is untouched.
    assert Path(f"/run/netns/{cluster.ports['NODE_NETNS']}").exists()
    assert wait_until(lambda: get(f"http://{ours_ip}/"), timeout=60, what=f"an answer from http://{ours_ip}/") \
        .startswith("hello from neighbour-")
