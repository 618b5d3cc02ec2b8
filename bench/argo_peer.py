"""Argo Rollouts as a peer in `make bench` (bench/run.py's argo phase).

rollouts-controller v1.10.1, built from its Go module by
hack/build-argo-rollouts.sh into ~/.cache/modeldeploy, runs as a process
against the bench cluster (namespaced to the run's namespace, its leader
election in the `argo-rollouts` namespace, its own default QPS/burst and
worker counts, no traffic provider). It is given the objects a user would
apply for the same model: a Rollout with the pod template our Deployments'
children carry (2 replicas, same image, kwok nodes) and the canary steps the
operator's run uses (setWeight 50, pause 5s); and, in the second variant,
the Service and PodDisruptionBudget the operator would write beside it.

Figures, as for the operator: time until every Rollout is phase Healthy with
2 ready, the controller's writes per Rollout from the API server's audit log
(its user agent), its own count of API requests by verb (its /metrics), and
its peak RSS and CPU seconds from /proc.
"""
from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import yaml

from support.cluster import REPO, Cluster
from support.operator import free_port
from support.sampling import ChangeRecorder
from support.waiting import wait_until

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "rollouts"
# The user agent client-go gives a binary named rollouts-controller.
AGENT = "rollouts-controller/"
LEADER_NAMESPACE = "argo-rollouts"
LEASE = "argo-rollouts-controller-lock"


def build() -> Path:
    """The cache directory with bin/rollouts-controller and crds/ (built the
    first time on a machine, about 4 min on 2 cores; progress on stderr)."""
    out = subprocess.run([str(REPO / "hack" / "build-argo-rollouts.sh")], check=True, stdout=subprocess.PIPE,
                         text=True).stdout.strip().splitlines()[-1]
    return Path(out)


def install(cluster: Cluster, home: Path) -> None:
    """Argo's CRDs from the module's manifests/crds, and the namespace of its
    leader election (both idempotent)."""
    for crd in sorted((home / "crds").glob("*-crd.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(crd), timeout=120)
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                    *(f"crd/{yaml.safe_load(c.read_text())['metadata']['name']}"
                      for c in sorted((home / "crds").glob("*-crd.yaml"))), timeout=90)
    if cluster.kubectl("get", "namespace", LEADER_NAMESPACE, check=False).returncode != 0:
        cluster.kubectl("create", "namespace", LEADER_NAMESPACE)


def proc_usage(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds user+system) of a process, from /proc."""
    rss = next(int(l.split()[1]) * 1024 for l in Path(f"/proc/{pid}/status").read_text().splitlines()
               if l.startswith("VmRSS:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


class RolloutsController:
    """rollouts-controller as a process of its own, watching one namespace,
    with its resident memory sampled every second for the peak."""

    def __init__(self, cluster: Cluster, home: Path, namespace: str, log: Path) -> None:
        self.metrics_port, healthz_port = free_port(), free_port()
        # The last run's controller does not release its lease when it stops
        # (ReleaseOnCancel is false in Argo): without this, the new one would
        # wait out the lease (15 s) inside the timed window.
        cluster.kubectl("delete", "lease", "-n", LEADER_NAMESPACE, LEASE, "--ignore-not-found")
        out = log.open("a")
        self.proc = subprocess.Popen(
            [str(home / "bin" / "rollouts-controller"), "--kubeconfig", str(cluster.kubeconfig),
             "--namespaced", "--namespace", namespace, "--metricsPort", str(self.metrics_port),
             "--healthzPort", str(healthz_port), "--loglevel", "warn"],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "POD_NAMESPACE": LEADER_NAMESPACE},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.log = log
        wait_until(lambda: self.proc.poll() is None and self.metrics() != "" and self._leading(cluster), timeout=120,
                   what="rollouts-controller to serve its /metrics and hold its leader lease",
                   describe=lambda: f"exit code {self.proc.poll()}; log: {log.read_text(errors='replace')[-1500:]}")
        self._sampling = ExitStack()
        self.rss = self._sampling.enter_context(ChangeRecorder(lambda: proc_usage(self.proc.pid)[0], period=1.0))

    @staticmethod
    def _leading(cluster: Cluster) -> bool:
        got = cluster.kubectl("get", "lease", "-n", LEADER_NAMESPACE, LEASE, "-o",
                              "jsonpath={.spec.holderIdentity}", check=False)
        return got.returncode == 0 and got.stdout.strip() != ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as resp:
            return resp.read().decode()

    def requests_by_verb(self) -> dict[str, int]:
        """Its own count of the API requests it made (controller_clientset_k8s_request_total), by verb."""
        out: Counter[str] = Counter()
        for line in self.metrics().splitlines():
            if line.startswith("controller_clientset_k8s_request_total{"):
                labels, _, value = line.rpartition(" ")
                verb = labels.split('verb="', 1)[1].split('"', 1)[0]
                out[verb] += int(float(value))
        return dict(out)

    def summary(self) -> dict:
        rss, cpu = proc_usage(self.proc.pid)
        return {"peak_rss_mib": round(max([*self.rss.seen, rss]) / 2**20, 1), "cpu_seconds": round(cpu, 1),
                "requests_by_verb": self.requests_by_verb()}

    def stop(self) -> None:
        self._sampling.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def rollout_objects(children: list[dict], steps: list[dict], with_service_and_pdb: bool) -> list[dict]:
    """What a user would apply to Argo Rollouts for one of our models, from
    the children `modeldeploy render` produces for it: a Rollout with the
    stable Deployment's pod template (without our role/revision labels, Argo
    adds its own hash) and the same canary steps; and, when asked, the
    model's Service and PodDisruptionBudget as they are."""
    dep = next(c for c in children if c["kind"] == "Deployment")
    name = dep["metadata"]["labels"]["modeldeploy.io/name"]
    template = dep["spec"]["template"]
    for key in ("modeldeploy.io/role", "modeldeploy.io/revision", "app.kubernetes.io/managed-by"):
        template["metadata"]["labels"].pop(key, None)
    for spread in template["spec"].get("topologySpreadConstraints", []):
        spread["labelSelector"]["matchLabels"].pop("modeldeploy.io/role", None)
    rollout = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "Rollout",
        "metadata": {"name": name, "namespace": dep["metadata"]["namespace"]},
        "spec": {"replicas": dep["spec"]["replicas"], "revisionHistoryLimit": dep["spec"]["revisionHistoryLimit"],
                 "selector": {"matchLabels": {"modeldeploy.io/name": name}},
                 "template": template, "strategy": {"canary": {"steps": steps}}},
    }
    docs = [rollout]
    if with_service_and_pdb:
        for child in children:
            if (child["kind"] == "Service" and child["metadata"]["name"] == name) \
                    or child["kind"] == "PodDisruptionBudget":
                child = {**child, "metadata": {k: v for k, v in child["metadata"].items() if k != "ownerReferences"}}
                child["metadata"]["labels"] = {k: v for k, v in child["metadata"]["labels"].items()
                                               if k != "app.kubernetes.io/managed-by"}
                docs.append(child)
    return docs


def healthy(replicas: int):
    def check(ro: dict) -> bool:
        st = ro.get("status") or {}
        return st.get("phase") == "Healthy" and (st.get("readyReplicas") or 0) >= replicas \
            and (st.get("availableReplicas") or 0) >= replicas \
            and st.get("observedGeneration") == str(ro["metadata"].get("generation"))
    return check
