"""The API server enforces what the operator relies on: versions, RBAC with
service-account tokens, Pod Security admission, and CRD schemas."""
from __future__ import annotations

import json
import subprocess

import yaml

from support.cluster import REPO, service_account_kubeconfig
from support.waiting import wait_until


def test_server_reports_the_pinned_release(cluster):
    pinned = dict(line.split("=", 1) for line in
                  (REPO / "hack" / "versions.sh").read_text().splitlines()
                  if line and not line.startswith("#"))["K8S_VERSION"]
    version = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == pinned
    assert version["clientVersion"]["gitVersion"] == pinned


def test_cluster_up_again_is_a_no_op(cluster):
    pids_before = sorted(p.read_text() for p in (cluster.dir / "pids").glob("*.pid"))
    proc = subprocess.run([str(REPO / "hack" / "cluster.sh"), "up"], capture_output=True, text=True,
                          env={**cluster.env, "CLUSTER_DIR": str(cluster.dir)}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "already up" in proc.stderr
    assert proc.stdout.strip() == f"export KUBECONFIG={cluster.kubeconfig}"
    assert sorted(p.read_text() for p in (cluster.dir / "pids").glob("*.pid")) == pids_before


def test_service_account_is_held_to_its_role(cluster, namespace, tmp_path):
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "deployer")
    cluster.kubectl("-n", namespace, "create", "role", "services-only", "--verb=create,get,list", "--resource=services")
    cluster.kubectl("-n", namespace, "create", "rolebinding", "deployer-services", "--role=services-only",
                    f"--serviceaccount={namespace}:deployer")
    kubeconfig = service_account_kubeconfig(cluster, namespace, "deployer", tmp_path / "deployer.kubeconfig")

    who = json.loads(cluster.kubectl("auth", "whoami", "-o", "json", kubeconfig=kubeconfig).stdout)
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:deployer"

    created = cluster.kubectl("create", "service", "clusterip", "allowed", "--tcp=80:8080", kubeconfig=kubeconfig,
                              check=False)
    assert created.returncode == 0, created.stderr
    denied = cluster.kubectl("get", "secrets", kubeconfig=kubeconfig, check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr and "secrets" in denied.stderr, denied.stderr


def test_pod_security_restricted_is_enforced(cluster, namespace):
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    privileged = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root-pod"},
        "spec": {"containers": [{"name": "c", "image": "example.invalid/x:1",
                                 "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": True}}]},
    }
    proc = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(privileged), check=False)
    assert proc.returncode != 0
    assert 'violates PodSecurity "restricted' in proc.stderr, proc.stderr

    compliant = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "good-pod"},
        "spec": {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                 "containers": [{"name": "c", "image": "example.invalid/x:1",
                                 "securityContext": {"allowPrivilegeEscalation": False,
                                                     "capabilities": {"drop": ["ALL"]}}}]},
    }
    cluster.apply(namespace, compliant)
    wait_until(lambda: cluster.core.read_namespaced_pod("good-pod", namespace).status.phase == "Running",
               timeout=60, what="the compliant pod to run")


def httproute(name: str, weights: tuple[int, int]) -> dict:
    return {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": name},
        "spec": {
            "parentRefs": [{"name": "public-gw"}],
            "rules": [{"backendRefs": [{"name": "model-stable", "port": 80, "weight": weights[0]},
                                       {"name": "model-canary", "port": 80, "weight": weights[1]}]}],
        },
    }


def test_httproute_schema_accepts_weights_and_refuses_a_bad_one(cluster, namespace):
    cluster.apply(namespace, httproute("split", (80, 20)))
    stored = cluster.get_json("-n", namespace, "httproute", "split")
    assert [b["weight"] for b in stored["spec"]["rules"][0]["backendRefs"]] == [80, 20]

    bad = cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(httproute("bad", (80, -5))),
                          check=False)
    assert bad.returncode != 0
    assert "weight" in bad.stderr and "greater than or equal to 0" in bad.stderr, bad.stderr


def test_istio_virtualservice_crd_is_served(cluster, namespace):
    vs = {
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "split"},
        "spec": {"hosts": ["model.example.com"],
                 "http": [{"route": [{"destination": {"host": "model-stable"}, "weight": 90},
                                     {"destination": {"host": "model-canary"}, "weight": 10}]}]},
    }
    cluster.apply(namespace, vs)
    stored = cluster.get_json("-n", namespace, "virtualservice", "split")
    assert [r["weight"] for r in stored["spec"]["http"][0]["route"]] == [90, 10]
