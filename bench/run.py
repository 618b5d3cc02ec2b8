"""The scale benchmark (`make bench`): N ModelDeployments at once on the local
control plane, measured against baselines taken in the same run.

For each N (BENCH_SIZES, default 100,300,1000):
  direct     the limit: the same child manifests `modeldeploy render` produces,
             applied with one client and no operator; time until every
             Deployment is Available
  operator   N ModelDeployments created at once with the operator running;
             time until all are Ready, create->first child and create->Ready
             latencies, API requests, writes per ModelDeployment, peak RSS,
             CPU seconds, event-loop lag
  naive      the operator with write avoidance off and concurrency 1 (largest N only)
  (BENCH_PHASES=converge runs only direct and operator, to check a change quickly)
  steady     (largest N) BENCH_STEADY_SECONDS with nothing changed, spanning
             several full resyncs: the operator's writes must be 0
  rollout    (largest N) a new model version for all N at once through a
             2-step canary: time until all are promoted, peak canaries in flight

Results go to bench/results/<time>.json (with the machine description) and a
plot of time-to-Ready against N (bench/results/<time>.png).
"""
from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from modeldeploy.reconcile.plan import steady_children  # noqa: E402
from modeldeploy.runtimes import load_runtime_table  # noqa: E402

GROUP, VERSION, PLURAL = "modeldeploy.io", "v1alpha1", "modeldeployments"
CLIENT_THREADS = 16
AGENT = "modeldeploy-operator/"


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return round(ordered[k], 3)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model(name: str, version: str = "v1", steps: list | None = None) -> dict:
    spec = {
        "model": {"uri": f"s3://models/{name}/{version}", "version": version, "format": "sklearn"},
        "replicas": 2,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
    }
    if steps is not None:
        spec["rollout"] = {"steps": steps}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}


class Cluster:
    def __init__(self) -> None:
        self.dir = Path(os.environ.get("CLUSTER_DIR", REPO / ".cluster"))
        self.kubeconfig = self.dir / "kubeconfig"
        config.load_kube_config(config_file=str(self.kubeconfig))
        cfg = client.Configuration.get_default_copy()
        cfg.connection_pool_maxsize = CLIENT_THREADS * 2
        self.api = client.ApiClient(cfg)
        self.core, self.apps = client.CoreV1Api(self.api), client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        ports = dict(line.split("=", 1) for line in (self.dir / "ports").read_text().splitlines() if "=" in line)
        self.bin = Path(ports["BIN_DIR"])
        self.audit = self.dir / "logs" / "audit.log"

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return subprocess.run([str(self.bin / "kubectl"), *args], input=input, capture_output=True, text=True,
                              check=True, env={**os.environ, "KUBECONFIG": str(self.kubeconfig)}).stdout

    def fresh_namespace(self, name: str) -> str:
        self.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=600s")
        self.kubectl("create", "namespace", name)
        return name

    def drop_namespace(self, name: str) -> None:
        self.kubectl("delete", "namespace", name, "--wait=false")

    def audit_mark(self) -> int:
        return self.audit.stat().st_size

    def audit_writes(self, mark: int, namespace: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self.audit.open("rb") as f:
            f.seek(mark)
            for raw in f:
                entry = json.loads(raw)
                if not entry.get("userAgent", "").startswith(AGENT):
                    continue
                if namespace and f"/namespaces/{namespace}/" not in entry.get("requestURI", ""):
                    continue
                counts[entry["verb"]] = counts.get(entry["verb"], 0) + 1
        return counts


class Watcher(threading.Thread):
    """Records, by object name, the first wall-clock time a predicate held."""

    def __init__(self, list_fn, args, predicate, key=lambda o: o["metadata"]["name"]):
        super().__init__(daemon=True)
        self.list_fn, self.args, self.predicate, self.key = list_fn, args, predicate, key
        self.seen: dict[str, float] = {}
        self.objects: dict[str, dict] = {}
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for event in w.stream(self.list_fn, *self.args, timeout_seconds=30, _request_timeout=40):
                    obj = event["object"]
                    if not isinstance(obj, dict):
                        obj = client.ApiClient().sanitize_for_serialization(obj)
                    name = self.key(obj)
                    self.objects[name] = obj
                    if name not in self.seen and self.predicate(obj):
                        self.seen[name] = time.time()
                    if self._stop.is_set():
                        break
            except Exception:
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


def is_ready(version: str):
    def check(md: dict) -> bool:
        st = md.get("status") or {}
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions", []))
        return ready and (st.get("stable") or {}).get("modelVersion") == version and \
            st.get("observedGeneration") == md["metadata"].get("generation") and not st.get("canary")
    return check


def deployment_available(dep: dict) -> bool:
    st = dep.get("status") or {}
    return (st.get("readyReplicas") or 0) >= (dep.get("spec") or {}).get("replicas", 1) and \
        st.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)


def wait_all(watcher: Watcher, n: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while len(watcher.seen) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {len(watcher.seen)}/{n} after {timeout:.0f}s")
        time.sleep(0.2)


class Operator:
    def __init__(self, cluster: Cluster, namespace: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = (cluster.dir / "logs" / f"bench-operator-{namespace}.log").open("w")
        self.proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "modeldeploy"), "run", "--namespace", namespace,
             "--metrics-port", str(self.port)],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig), **env},
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.peak_rss = 0.0
        deadline = time.monotonic() + 60
        while True:
            try:
                self.metrics()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def metrics(self) -> dict[str, float]:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.peak_rss = max(self.peak_rss, self.metrics().get("process_resident_memory_bytes", 0))
            except OSError:
                pass

    def summary(self) -> dict:
        m = self.metrics()
        self.peak_rss = max(self.peak_rss, m.get("process_resident_memory_bytes", 0))
        writes = {k.split("{", 1)[1].rstrip("}"): v for k, v in m.items()
                  if k.startswith("modeldeploy_api_writes_total{")}
        reads = {k.split("{", 1)[1].rstrip("}"): v for k, v in m.items() if k.startswith("modeldeploy_api_reads_total{")}
        return {
            "peak_rss_mib": round(self.peak_rss / 2**20, 1),
            "cpu_seconds": round(m.get("process_cpu_seconds_total", 0), 1),
            "event_loop_lag_max_seconds": round(m.get("modeldeploy_event_loop_lag_max_seconds", 0), 3),
            "reconciles": m.get('modeldeploy_reconciles_total{result="ok"}', 0),
            "reconcile_errors": m.get('modeldeploy_reconciles_total{result="error"}', 0),
            "writes_by_kind": writes, "reads_by_kind": reads,
        }

    def stop(self) -> None:
        self._stop.set()
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def create_all(cluster: Cluster, namespace: str, docs: list[dict]) -> dict[str, float]:
    sent: dict[str, float] = {}

    def create(doc: dict) -> None:
        sent[doc["metadata"]["name"]] = time.time()
        cluster.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(create, docs))
    return sent


def run_direct(cluster: Cluster, n: int) -> dict:
    """The limit: the rendered children applied with one client, no operator."""
    ns = cluster.fresh_namespace(f"bench-direct-{n}")
    table = load_runtime_table()
    manifests = []
    for i in range(n):
        doc = model(f"m{i:04d}")
        # The very children the operator's plan writes for this ModelDeployment.
        for child in steady_children(name=doc["metadata"]["name"], namespace=ns,
                                     uid="00000000-0000-0000-0000-000000000000", spec=doc["spec"], table=table):
            child["metadata"].pop("ownerReferences", None)  # no owner exists without the operator
            manifests.append(child)
    deps = Watcher(cluster.apps.list_namespaced_deployment, (ns,), deployment_available)
    deps.start()
    start = time.time()

    def apply(manifest: dict) -> None:
        kind = manifest["kind"]
        path = {"Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments",
                "Service": f"/api/v1/namespaces/{ns}/services",
                "PodDisruptionBudget": f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets"}[kind]
        req = cluster.api.param_serialize("PATCH", f"{path}/{manifest['metadata']['name']}",
                                          query_params=[("fieldManager", "bench-direct"), ("force", "true")],
                                          body=manifest, auth_settings=["BearerToken"],
                                          header_params={"Content-Type": "application/apply-patch+yaml"})
        resp = cluster.api.call_api(*req)
        resp.read()
        if resp.status >= 300:
            raise RuntimeError(f"{kind} apply: HTTP {resp.status} {resp.data[:200]!r}")

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(apply, manifests))
    applied = time.time() - start
    wait_all(deps, n, 1800, "direct: Deployments available")
    deps.stop()
    took = max(deps.seen.values()) - start
    cluster.drop_namespace(ns)
    log(f"direct N={n}: all {n} Deployments available in {took:.1f}s ({len(manifests)} objects applied in {applied:.1f}s)")
    return {"n": n, "seconds_all_available": round(took, 2), "objects": len(manifests),
            "apply_seconds": round(applied, 2)}


def run_operator(cluster: Cluster, n: int, env: dict[str, str], label: str, extra: bool = False) -> dict:
    ns = cluster.fresh_namespace(f"bench-{label}-{n}")
    op = Operator(cluster, ns, env)
    mark = cluster.audit_mark()
    ready = Watcher(cluster.custom.list_namespaced_custom_object, (GROUP, VERSION, ns, PLURAL), is_ready("v1"))
    first_child = Watcher(cluster.apps.list_namespaced_deployment, (ns,), lambda d: True,
                          key=lambda d: d["metadata"]["name"].removesuffix("-stable"))
    ready.start()
    first_child.start()
    docs = [model(f"m{i:04d}", steps=[{"setWeight": 50}, {"pause": {"duration": "5s"}}]) for i in range(n)]
    start = time.time()
    sent = create_all(cluster, ns, docs)
    wait_all(ready, n, 1800, f"{label}: ModelDeployments Ready")
    took = max(ready.seen.values()) - start
    to_ready = [ready.seen[k] - sent[k] for k in sent]
    to_child = [first_child.seen[k] - sent[k] for k in sent if k in first_child.seen]
    writes = cluster.audit_writes(mark, ns)
    result = {
        "n": n, "config": label, "seconds_all_ready": round(took, 2),
        "create_to_ready_p50": percentile(to_ready, 50), "create_to_ready_p95": percentile(to_ready, 95),
        "create_to_ready_p99": percentile(to_ready, 99),
        "create_to_first_child_p50": percentile(to_child, 50), "create_to_first_child_p95": percentile(to_child, 95),
        "create_to_first_child_p99": percentile(to_child, 99),
        "apiserver_writes_by_verb": writes, "writes_per_model": round(sum(writes.values()) / n, 2),
        **op.summary(),
    }
    log(f"{label} N={n}: all Ready in {took:.1f}s; p50/p95/p99 create->Ready "
        f"{result['create_to_ready_p50']}/{result['create_to_ready_p95']}/{result['create_to_ready_p99']}s; "
        f"{result['writes_per_model']} writes/model; peak RSS {result['peak_rss_mib']} MiB")
    if extra:
        result["steady"] = run_steady(cluster, op, ns, n)
        result["rollout"] = run_rollout(cluster, op, ns, n, docs, ready)
    ready.stop()
    first_child.stop()
    op.stop()
    cluster.drop_namespace(ns)
    return result


def run_steady(cluster: Cluster, op: Operator, ns: str, n: int) -> dict:
    seconds = float(os.environ.get("BENCH_STEADY_SECONDS", 300))
    # Let writes still in flight (e.g. the HPA-free Deployments settling) land first.
    time.sleep(10)
    mark = cluster.audit_mark()
    before = op.metrics().get('modeldeploy_reconciles_total{result="ok"}', 0)
    log(f"steady: {seconds:.0f}s with nothing changed (resync every {os.environ['MODELDEPLOY_RESYNC_SECONDS']}s)")
    time.sleep(seconds)
    passes = op.metrics().get('modeldeploy_reconciles_total{result="ok"}', 0) - before
    writes = cluster.audit_writes(mark, ns)
    log(f"steady N={n}: {int(passes)} reconcile passes, writes {writes or 0}")
    return {"seconds": seconds, "reconcile_passes": passes, "writes_by_verb": writes,
            "writes_total": sum(writes.values())}


def run_rollout(cluster: Cluster, op: Operator, ns: str, n: int, docs: list[dict], ready: Watcher) -> dict:
    promoted = Watcher(cluster.custom.list_namespaced_custom_object, (GROUP, VERSION, ns, PLURAL), is_ready("v2"))
    promoted.start()
    peak = [0]
    stop = threading.Event()

    def count_canaries() -> None:
        while not stop.wait(0.5):
            live = sum(1 for md in list(promoted.objects.values()) if (md.get("status") or {}).get("canary"))
            peak[0] = max(peak[0], live)

    threading.Thread(target=count_canaries, daemon=True).start()
    start = time.time()

    def bump(doc: dict) -> None:
        patch = {"spec": {"model": {"version": "v2", "uri": doc["spec"]["model"]["uri"].replace("/v1", "/v2")}}}
        cluster.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, doc["metadata"]["name"], patch)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(bump, docs))
    wait_all(promoted, n, 3600, "rollout: promoted")
    stop.set()
    promoted.stop()
    took = max(promoted.seen.values()) - start
    log(f"rollout N={n}: all promoted in {took:.1f}s; peak {peak[0]} canaries in flight")
    return {"seconds_all_promoted": round(took, 2), "peak_canaries_in_flight": peak[0],
            "steps": docs[0]["spec"]["rollout"]["steps"]}


def machine() -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    versions = dict(l.split("=", 1) for l in (REPO / "hack" / "versions.sh").read_text().splitlines()
                    if "=" in l and not l.startswith("#"))
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(mem / 2**20, 1),
            "python": platform.python_version(), "kubernetes": versions["K8S_VERSION"],
            "kwok_nodes": len(client.CoreV1Api().list_node().items)}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, label in (("direct", "direct apply (the limit)"), ("operator", "operator"), ("naive", "naive operator")):
        points = sorted((r["n"], r.get("seconds_all_available", r.get("seconds_all_ready")))
                        for r in results[key])
        if points:
            ax.plot(*zip(*points), marker="o", label=label)
    ax.set_xlabel("ModelDeployments created at once (2 replicas each)")
    ax.set_ylabel("seconds until all Ready / Available")
    ax.set_title(f"Time to Ready on {results['machine']['cpus']} cores (kube {results['machine']['kubernetes']})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100,300,1000").split(",")]
    os.environ.setdefault("MODELDEPLOY_RESYNC_SECONDS", "60")
    cluster = Cluster()
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds" / "modeldeployment.yaml"))
    results: dict = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                     "direct": [], "operator": [], "naive": []}
    tuned = {"MODELDEPLOY_RESYNC_SECONDS": os.environ["MODELDEPLOY_RESYNC_SECONDS"]}
    naive = {**tuned, "MODELDEPLOY_NAIVE": "1", "MODELDEPLOY_CONCURRENCY": "1", "MODELDEPLOY_API_WORKERS": "1"}
    # BENCH_PHASES=converge: only the direct and operator convergence runs
    # (a quick check of a change); the default runs everything.
    full = os.environ.get("BENCH_PHASES", "all") != "converge"
    for n in sizes:
        results["direct"].append(run_direct(cluster, n))
        results["operator"].append(run_operator(cluster, n, tuned, "operator", extra=full and n == max(sizes)))
    if full:
        results["naive"].append(run_operator(cluster, max(sizes), naive, "naive"))
    for r in results["operator"]:
        d = next(d for d in results["direct"] if d["n"] == r["n"])
        r["ratio_to_direct"] = round(r["seconds_all_ready"] / d["seconds_all_available"], 2)
    top = next(r for r in results["operator"] if r["n"] == max(sizes))
    for r in results["naive"]:
        r["ratio_to_operator"] = round(r["seconds_all_ready"] / top["seconds_all_ready"], 2)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = REPO / "bench" / "results" / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    log(f"results: {out.relative_to(REPO)} and {out.with_suffix('.png').relative_to(REPO)}")
    summary = {r["n"]: r["ratio_to_direct"] for r in results["operator"]}
    log(f"operator time / direct-apply time by N: {summary}"
        + "".join(f"; naive / tuned at N={r['n']}: {r['ratio_to_operator']}" for r in results["naive"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
