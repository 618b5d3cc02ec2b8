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
  queue      (largest N) a new version for all N at once with no limit, then
             again with --max-concurrent-canaries BENCH_MAX_CANARIES (default
             20): peak canaries in flight, time to all promoted, and its ratio
             to the unlimited run (BENCH_PHASES=queue runs only this)
  steady     (largest N) BENCH_STEADY_SECONDS with nothing changed, spanning
             several full resyncs: the operator's writes must be 0
  rollout    (largest N) a new model version for all N at once through a
             2-step canary: time until all are promoted, peak canaries in flight
  shards     (BENCH_PHASES=shards, largest N) memory per shard: N models made
             Ready by one operator, then the resident memory of a fresh
             unsharded operator and of BENCH_SHARDS (default 3) `--shard I/K`
             processes, each once its cache is filled and a full resync has
             run; then a new version for all N with the shards running
  scale      (BENCH_PHASES=scale, largest N) N models with 1 replica each under
             one operator: time to all Ready, peak RSS, CPU, event-loop lag;
             then two full resyncs with nothing changed (writes must be 0),
             the last one's duration; a restarted operator's memory once its
             first resync is done; with BENCH_SCALE_SHARDS=K the same N in
             a fresh namespace under K shards (time, RSS and CPU per shard)
  gc         (BENCH_PHASES=gc, largest N) N models created, then a new
             version for all N at once, without and with full collections'
             survivors frozen (MODELDEPLOY_GC_FREEZE=1): the longest
             collection, event-loop stall, memory and CPU, as ratios
  argo       the peer, Argo Rollouts v1.10.1 (bench/argo_peer.py): N Rollouts
             with the same pod template and canary steps, alone and with each
             model's Service and PDB; time until all Healthy with 2 ready,
             writes per Rollout, its API requests by verb, peak RSS, CPU
             seconds (BENCH_PHASES=argo runs only direct, operator and argo)

Results go to bench/results/<time>.json (with the machine description) and a
plot of time-to-Ready against N (bench/results/<time>.png).
"""
from __future__ import annotations

import json
import os
import platform
import signal
import sys
import threading
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The operator's source and the tests' helpers (the same cluster, operator
# process and waiting code the tests use).
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tests")]

from modeldeploy.reconcile.plan import steady_children  # noqa: E402
from modeldeploy.runtimes import load_runtime_table  # noqa: E402
from support.canary import model_v  # noqa: E402
from support.cluster import SESSION_CLUSTER_DIR, Cluster  # noqa: E402
from support.models import API, is_true, model_deployment  # noqa: E402
from support.operator import AuditLog, NamespaceWrites, install_crd  # noqa: E402
from support.process import MeteredOperator  # noqa: E402
from support.sampling import ChangeRecorder, FirstTimes  # noqa: E402
from support.waiting import wait_until  # noqa: E402

import argo_peer  # noqa: E402  (bench/, the script's own directory)

PLURAL = "modeldeployments"
CLIENT_THREADS = 16
# The operator's own client (writes by kopf itself are not counted).
AGENT = "modeldeploy-operator/"


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return round(ordered[k], 3)


def model(name: str, version: str = "v1", steps: list | None = None, replicas: int = 2,
          deadline: int | None = None) -> dict:
    # Small requests, so N models with 2 replicas each fit on the kwok nodes.
    rollout = {**({"steps": steps} if steps is not None else {}),
               **({"progressDeadlineSeconds": deadline} if deadline is not None else {})}
    return model_deployment(name, version=version, replicas=replicas,
                            resources={"requests": {"cpu": "10m", "memory": "32Mi"}},
                            **({"rollout": rollout} if rollout else {}))


def canary_models(n: int, deadline: int | None = None) -> list[dict]:
    """N models whose next version goes through a two-step canary (50 %, a 5 s pause)."""
    return [model(f"m{i:04d}", steps=[{"setWeight": 50}, {"pause": {"duration": "5s"}}], deadline=deadline)
            for i in range(n)]


def fresh_namespace(cluster: Cluster, name: str) -> str:
    cluster.kubectl("delete", "namespace", name, "--ignore-not-found", "--wait=true", "--timeout=600s", timeout=660)
    cluster.kubectl("create", "namespace", name)
    return name


def drop_namespace(cluster: Cluster, name: str) -> None:
    cluster.kubectl("delete", "namespace", name, "--wait=false")


def writes_by_verb(writes: NamespaceWrites) -> dict[str, int]:
    """The operator's write requests in the namespace since the mark, as the
    API server's audit log recorded them, by verb."""
    return dict(Counter(e["verb"] for e in writes.since_mark((AGENT,))))


def is_ready(version: str):
    def check(md: dict) -> bool:
        st = md.get("status") or {}
        return is_true(md, "Ready") and (st.get("stable") or {}).get("modelVersion") == version and \
            st.get("observedGeneration") == md["metadata"].get("generation") and not st.get("canary")
    return check


def deployment_available(dep: dict) -> bool:
    st = dep.get("status") or {}
    return (st.get("readyReplicas") or 0) >= (dep.get("spec") or {}).get("replicas", 1) and \
        st.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0)


def wait_all(watch: FirstTimes, n: int, timeout: float, what: str) -> None:
    wait_until(lambda: len(watch.seen) >= n, timeout=timeout, what=what,
               describe=lambda: f"{len(watch.seen)}/{n}")


def watch_mds(cluster: Cluster, ns: str, predicate) -> FirstTimes:
    return FirstTimes(cluster.custom.list_namespaced_custom_object, (*API, ns, PLURAL), predicate)


class Operator:
    """`modeldeploy run` in one namespace (the tests' MeteredOperator), with
    its resident memory sampled every second for the peak."""

    def __init__(self, cluster: Cluster, namespace: str, env: dict[str, str], extra_args: tuple[str, ...] = (),
                 tag: str = "") -> None:
        self.process = MeteredOperator(cluster, namespace,
                                       cluster.dir / "logs" / f"bench-operator-{namespace}{tag}.log",
                                       extra_args=extra_args, env=env).start()
        self._sampling = ExitStack()
        self.rss = self._sampling.enter_context(
            ChangeRecorder(lambda: self.process.samples()["process_resident_memory_bytes"], period=1.0))

    def metrics(self) -> dict[str, float]:
        return self.process.samples()

    def probe(self) -> dict:
        """The liveness endpoint's answer: kopf's probes (resyncs, idle)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.process.port}/healthz", timeout=5) as resp:
            return json.loads(resp.read())

    def summary(self) -> dict:
        m = self.metrics()
        peak_rss = max([*self.rss.seen, m.get("process_resident_memory_bytes", 0)])
        writes = {k.split("{", 1)[1].rstrip("}"): v for k, v in m.items()
                  if k.startswith("modeldeploy_api_writes_total{")}
        reads = {k.split("{", 1)[1].rstrip("}"): v for k, v in m.items() if k.startswith("modeldeploy_api_reads_total{")}
        return {
            "peak_rss_mib": round(peak_rss / 2**20, 1),
            "cpu_seconds": round(m.get("process_cpu_seconds_total", 0), 1),
            "event_loop_lag_max_seconds": round(m.get("modeldeploy_event_loop_lag_max_seconds", 0), 3),
            "gc_pause_max_seconds": round(m.get("modeldeploy_gc_pause_max_seconds", 0), 3),
            "gc_full_collections": m.get('modeldeploy_gc_pause_seconds_count{generation="2"}', 0),
            "reconciles": m.get('modeldeploy_reconciles_total{result="ok"}', 0),
            "reconcile_errors": m.get('modeldeploy_reconciles_total{result="error"}', 0),
            "writes_by_kind": writes, "reads_by_kind": reads,
        }

    def stop(self) -> None:
        self._sampling.close()
        self.process.stop()


def create_all(cluster: Cluster, namespace: str, docs: list[dict]) -> dict[str, float]:
    sent: dict[str, float] = {}

    def create(doc: dict) -> None:
        sent[doc["metadata"]["name"]] = time.time()
        cluster.custom.create_namespaced_custom_object(*API, namespace, PLURAL, doc)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(create, docs))
    return sent


def server_side_apply(cluster: Cluster, ns: str, manifest: dict, manager: str) -> None:
    kind = manifest["kind"]
    path = {"Deployment": f"/apis/apps/v1/namespaces/{ns}/deployments",
            "Service": f"/api/v1/namespaces/{ns}/services",
            "PodDisruptionBudget": f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
            "Rollout": f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/rollouts"}[kind]
    req = cluster.api.param_serialize("PATCH", f"{path}/{manifest['metadata']['name']}",
                                      query_params=[("fieldManager", manager), ("force", "true")],
                                      body=manifest, auth_settings=["BearerToken"],
                                      header_params={"Content-Type": "application/apply-patch+yaml"})
    for attempt in range(1, 4):
        resp = cluster.api.call_api(*req)
        resp.read()
        # Retried as a client (and the operator's queue) would: an overload
        # answer, or a Service whose ClusterIP the API server's allocator
        # failed to reserve (its own loopback request timed out in a burst).
        transient = resp.status in (429, 500, 503, 504) or b"failed to allocate IP" in resp.data
        if resp.status < 300 or not transient or attempt == 3:
            break
        log(f"{kind} {manifest['metadata']['name']} apply: HTTP {resp.status}, retrying ({attempt}/3)")
        time.sleep(attempt)
    if resp.status >= 300:
        raise RuntimeError(f"{kind} apply: HTTP {resp.status} {resp.data[:200]!r}")


def run_direct(cluster: Cluster, n: int) -> dict:
    """The limit: the rendered children applied with one client, no operator."""
    ns = fresh_namespace(cluster, f"bench-direct-{n}")
    table = load_runtime_table()
    manifests = []
    for i in range(n):
        doc = model(f"m{i:04d}")
        # The very children the operator's plan writes for this ModelDeployment.
        for child in steady_children(name=doc["metadata"]["name"], namespace=ns,
                                     uid="00000000-0000-0000-0000-000000000000", spec=doc["spec"], table=table):
            child["metadata"].pop("ownerReferences", None)  # no owner exists without the operator
            manifests.append(child)

    def apply(manifest: dict) -> None:
        server_side_apply(cluster, ns, manifest, "bench-direct")

    with FirstTimes(cluster.apps.list_namespaced_deployment, (ns,), deployment_available) as deps:
        start = time.time()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(pool.map(apply, manifests))
        applied = time.time() - start
        wait_all(deps, n, 1800, "direct: Deployments available")
    took = max(deps.seen.values()) - start
    drop_namespace(cluster, ns)
    log(f"direct N={n}: all {n} Deployments available in {took:.1f}s ({len(manifests)} objects applied in {applied:.1f}s)")
    return {"n": n, "seconds_all_available": round(took, 2), "objects": len(manifests),
            "apply_seconds": round(applied, 2)}


def run_operator(cluster: Cluster, n: int, env: dict[str, str], label: str, extra: bool = False) -> dict:
    ns = fresh_namespace(cluster, f"bench-{label}-{n}")
    op = Operator(cluster, ns, env)
    try:
        writes = NamespaceWrites(AuditLog(cluster), ns)
        with watch_mds(cluster, ns, is_ready("v1")) as ready, \
                FirstTimes(cluster.apps.list_namespaced_deployment, (ns,), lambda d: True,
                           key=lambda d: d["metadata"]["name"].removesuffix("-stable")) as first_child:
            docs = canary_models(n)
            start = time.time()
            sent = create_all(cluster, ns, docs)
            wait_all(ready, n, 1800, f"{label}: ModelDeployments Ready")
        took = max(ready.seen.values()) - start
        to_ready = [ready.seen[k] - sent[k] for k in sent]
        to_child = [first_child.seen[k] - sent[k] for k in sent if k in first_child.seen]
        by_verb = writes_by_verb(writes)
        result = {
            "n": n, "config": label, "seconds_all_ready": round(took, 2),
            "create_to_ready_p50": percentile(to_ready, 50), "create_to_ready_p95": percentile(to_ready, 95),
            "create_to_ready_p99": percentile(to_ready, 99),
            "create_to_first_child_p50": percentile(to_child, 50),
            "create_to_first_child_p95": percentile(to_child, 95),
            "create_to_first_child_p99": percentile(to_child, 99),
            "apiserver_writes_by_verb": by_verb, "writes_per_model": round(sum(by_verb.values()) / n, 2),
            **op.summary(),
        }
        log(f"{label} N={n}: all Ready in {took:.1f}s; p50/p95/p99 create->Ready "
            f"{result['create_to_ready_p50']}/{result['create_to_ready_p95']}/{result['create_to_ready_p99']}s; "
            f"{result['writes_per_model']} writes/model; peak RSS {result['peak_rss_mib']} MiB")
        if extra:
            result["steady"] = run_steady(cluster, op, ns, n)
            result["rollout"] = run_rollout(cluster, ns, n, docs)
    finally:
        op.stop()
    drop_namespace(cluster, ns)
    return result


def run_argo(cluster: Cluster, home, n: int, with_service_and_pdb: bool) -> dict:
    """Argo Rollouts, the peer (bench/argo_peer.py): N Rollouts (and, in the
    second variant, each model's Service and PDB) applied at once to a fresh
    namespace with rollouts-controller running; time until every Rollout is
    Healthy with 2 ready."""
    label = "argo-rollout-service-pdb" if with_service_and_pdb else "argo-rollout"
    ns = fresh_namespace(cluster, f"bench-{label}-{n}")
    table = load_runtime_table()
    steps = [{"setWeight": 50}, {"pause": {"duration": "5s"}}]  # as the operator's run
    docs = []
    for i in range(n):
        doc = model(f"m{i:04d}")
        children = steady_children(name=doc["metadata"]["name"], namespace=ns,
                                   uid="00000000-0000-0000-0000-000000000000", spec=doc["spec"], table=table)
        docs += argo_peer.rollout_objects(children, steps, with_service_and_pdb)
    controller = argo_peer.RolloutsController(cluster, home, ns, cluster.dir / "logs" / f"bench-{label}-{n}.log")
    try:
        writes = NamespaceWrites(AuditLog(cluster), ns)
        with FirstTimes(cluster.custom.list_namespaced_custom_object,
                        (argo_peer.GROUP, argo_peer.VERSION, ns, argo_peer.PLURAL), argo_peer.healthy(2)) as ready:
            start, sent = time.time(), {}
            with ThreadPoolExecutor(CLIENT_THREADS) as pool:
                list(pool.map(lambda d: (sent.setdefault(d["metadata"]["name"], time.time()),
                                         server_side_apply(cluster, ns, d, "bench-argo")), docs))
            applied = time.time() - start
            wait_all(ready, n, 1800, f"{label}: Rollouts Healthy with 2 ready")
        took = max(ready.seen.values()) - start
        entries = writes.since_mark((argo_peer.AGENT,))
        by_verb = dict(Counter(e["verb"] for e in entries))
        # Argo writes the ReplicaSets itself (the operator leaves that to the controller manager).
        by_resource = dict(Counter((e.get("objectRef") or {}).get("resource", "?") for e in entries))
        to_ready = [ready.seen[k] - sent[k] for k in ready.seen]
        result = {"n": n, "config": label, "seconds_all_ready": round(took, 2), "objects": len(docs),
                  "create_to_ready_p50": percentile(to_ready, 50), "create_to_ready_p95": percentile(to_ready, 95),
                  "create_to_ready_p99": percentile(to_ready, 99),
                  "apply_seconds": round(applied, 2),
                  "apiserver_writes_by_verb": by_verb, "apiserver_writes_by_resource": by_resource,
                  "writes_per_model": round(sum(by_verb.values()) / n, 2), **controller.summary()}
    finally:
        controller.stop()
    drop_namespace(cluster, ns)
    log(f"{label} N={n}: all Healthy in {took:.1f}s; {result['writes_per_model']} writes/rollout; "
        f"requests {result['requests_by_verb']}; peak RSS {result['peak_rss_mib']} MiB, CPU {result['cpu_seconds']}s")
    return result


def run_steady(cluster: Cluster, op: Operator, ns: str, n: int) -> dict:
    seconds = float(os.environ.get("BENCH_STEADY_SECONDS", 300))
    # Let writes still in flight (e.g. the HPA-free Deployments settling) land first.
    time.sleep(10)
    writes = NamespaceWrites(AuditLog(cluster), ns)
    before = op.metrics().get('modeldeploy_reconciles_total{result="ok"}', 0)
    log(f"steady: {seconds:.0f}s with nothing changed (resync every {os.environ['MODELDEPLOY_RESYNC_SECONDS']}s)")
    time.sleep(seconds)
    passes = op.metrics().get('modeldeploy_reconciles_total{result="ok"}', 0) - before
    by_verb = writes_by_verb(writes)
    log(f"steady N={n}: {int(passes)} reconcile passes, writes {by_verb or 0}")
    return {"seconds": seconds, "reconcile_passes": passes, "writes_by_verb": by_verb,
            "writes_total": sum(by_verb.values())}


def run_rollout(cluster: Cluster, ns: str, n: int, docs: list[dict], version: str = "v2") -> dict:
    peak = [0]
    stop = threading.Event()

    def bump(doc: dict) -> None:
        patch = {"spec": {"model": model_v(doc, version)["spec"]["model"]}}
        cluster.custom.patch_namespaced_custom_object(*API, ns, PLURAL, doc["metadata"]["name"], patch)

    with watch_mds(cluster, ns, is_ready(version)) as promoted:
        def count_canaries() -> None:
            while not stop.wait(0.5):
                live = sum(1 for md in list(promoted.objects.values()) if (md.get("status") or {}).get("canary"))
                peak[0] = max(peak[0], live)

        threading.Thread(target=count_canaries, daemon=True).start()
        start = time.time()
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(pool.map(bump, docs))
        wait_all(promoted, n, 3600, "rollout: promoted")
        stop.set()
    took = max(promoted.seen.values()) - start
    log(f"rollout N={n} to {version}: all promoted in {took:.1f}s; peak {peak[0]} canaries in flight")
    return {"seconds_all_promoted": round(took, 2), "peak_canaries_in_flight": peak[0],
            "steps": docs[0]["spec"]["rollout"]["steps"]}


def run_queue(cluster: Cluster, n: int, env: dict[str, str], limit: int) -> dict:
    """A new version for all N at once, first with no limit (the baseline),
    then with --max-concurrent-canaries `limit`, on the same N models: the
    peak of canaries in flight, and the time to promote them all, as a ratio
    to the baseline measured in the same run."""
    ns = fresh_namespace(cluster, f"bench-queue-{n}")
    # All N at once is the cluster's work for N rollouts in one go: at 1,000
    # on 2 cores the promotions' new pods took longer than the default 600 s
    # deadline and every model rolled back. The deadline is raised so the
    # baseline measures a rollout, not the deadline.
    docs = canary_models(n, deadline=3600)
    op = Operator(cluster, ns, env)
    try:
        with watch_mds(cluster, ns, is_ready("v1")) as ready:
            create_all(cluster, ns, docs)
            wait_all(ready, n, 1800, "queue: ModelDeployments Ready")
        unlimited = run_rollout(cluster, ns, n, docs, "v2")
        unlimited["operator"] = op.summary()  # the burst of N models, then N canaries at once
        op.stop()
        op = Operator(cluster, ns, {**env, "MODELDEPLOY_MAX_CONCURRENT_CANARIES": str(limit)})
        limited = run_rollout(cluster, ns, n, docs, "v3")
        result = {"n": n, "limit": limit, "unlimited": unlimited, "limited": limited,
                  "ratio_limited_to_unlimited": round(limited["seconds_all_promoted"]
                                                      / unlimited["seconds_all_promoted"], 2),
                  **op.summary()}
        log(f"queue N={n}: with at most {limit} canaries, peak {limited['peak_canaries_in_flight']} in flight, all "
            f"promoted in {limited['seconds_all_promoted']}s = {result['ratio_limited_to_unlimited']} x the "
            f"unlimited run ({unlimited['seconds_all_promoted']}s, peak {unlimited['peak_canaries_in_flight']})")
    finally:
        op.stop()
    drop_namespace(cluster, ns)
    return result


def run_gc(cluster: Cluster, n: int, env: dict[str, str]) -> dict:
    """The garbage collector's share of the event-loop stalls: N models
    created, then a new version for all N at once, with the survivors of
    full collections frozen out of the next ones (MODELDEPLOY_GC_FREEZE=1)
    and without (the default, the baseline), each in a fresh namespace under
    a fresh operator. Reported: each run's longest collection and event-loop
    stall, and their ratios to the baseline."""
    runs = {}
    for label, freeze in (("gc-off", "0"), ("gc-on", "1")):
        ns = fresh_namespace(cluster, f"bench-{label}-{n}")
        docs = canary_models(n, deadline=3600)
        op = Operator(cluster, ns, {**env, "MODELDEPLOY_GC_FREEZE": freeze})
        try:
            with watch_mds(cluster, ns, is_ready("v1")) as ready:
                start = time.time()
                create_all(cluster, ns, docs)
                wait_all(ready, n, 1800, f"{label}: ModelDeployments Ready")
            converged = round(max(ready.seen.values()) - start, 2)
            rollout = run_rollout(cluster, ns, n, docs, "v2")
            summary = op.summary()
            summary["gc_frozen_objects"] = op.metrics().get("modeldeploy_gc_frozen_objects", 0)
            runs[label] = {"seconds_all_ready": converged, "rollout": rollout, **summary}
            log(f"{label} N={n}: Ready in {converged}s, promoted in {rollout['seconds_all_promoted']}s; longest "
                f"collection {summary['gc_pause_max_seconds']}s ({summary['gc_full_collections']:.0f} full), "
                f"loop lag max {summary['event_loop_lag_max_seconds']}s, peak RSS {summary['peak_rss_mib']} MiB")
        finally:
            op.stop()
        drop_namespace(cluster, ns)
    off, on = runs["gc-off"], runs["gc-on"]
    ratios = {key: round(on[key] / off[key], 2) if off[key] else None
              for key in ("gc_pause_max_seconds", "event_loop_lag_max_seconds", "peak_rss_mib", "cpu_seconds")}
    log(f"gc N={n}: frozen / not frozen: {ratios}")
    return {"n": n, **runs, "ratio_frozen_to_not": ratios}


def settled_rss_mib(op: Operator, what: str) -> float:
    """Resident memory once the operator's cache is filled, a full resync has
    run and its queue is idle: the largest of five samples a second apart."""
    wait_until(lambda: (p := op.probe()).get("resyncs", 0) >= 1 and p.get("idle"), timeout=1800,
               what=f"{what}: a full resync done and idle", describe=op.probe)
    samples = []
    for _ in range(5):
        samples.append(op.metrics()["process_resident_memory_bytes"])
        time.sleep(1)
    return round(max(samples) / 2**20, 1)


def run_shards(cluster: Cluster, n: int, env: dict[str, str], shards: int) -> dict:
    """Memory per shard against one unsharded operator, on the same N models."""
    docs = canary_models(n)
    # BENCH_SHARDS_REUSE=1: measure on the N models an earlier run left in
    # bench-shards-N (kept afterwards too), skipping their creation.
    reuse = os.environ.get("BENCH_SHARDS_REUSE") == "1"
    ns = f"bench-shards-{n}" if reuse else fresh_namespace(cluster, f"bench-shards-{n}")
    converge = None
    if not reuse:
        op = Operator(cluster, ns, env)
        try:
            with watch_mds(cluster, ns, is_ready("v1")) as ready:
                start = time.time()
                create_all(cluster, ns, docs)
                wait_all(ready, n, 1800, "shards: ModelDeployments Ready")
            converge = {"seconds_all_ready": round(max(ready.seen.values()) - start, 2), **op.summary()}
        finally:
            op.stop()
        log(f"shards N={n}: all Ready under one operator in {converge['seconds_all_ready']}s, "
            f"peak RSS {converge['peak_rss_mib']} MiB")
    op = Operator(cluster, ns, env, tag="-unsharded")
    try:
        unsharded = settled_rss_mib(op, "unsharded")
    finally:
        op.stop()
    log(f"shards N={n}: unsharded operator settled at {unsharded} MiB")
    ops = [Operator(cluster, ns, env, extra_args=("--shard", f"{i}/{shards}"), tag=f"-shard{i}")
           for i in range(shards)]
    try:
        per_shard = [settled_rss_mib(o, f"shard {i}/{shards}") for i, o in enumerate(ops)]
        log(f"shards N={n}: {shards} shards settled at {per_shard} MiB")
        # BENCH_SHARDS_ROLLOUT=0: memory only.
        rollout = run_rollout(cluster, ns, n, docs, f"v{int(time.time())}") \
            if os.environ.get("BENCH_SHARDS_ROLLOUT", "1") == "1" else None
        summaries = [o.summary() for o in ops]
    finally:
        for o in ops:
            o.stop()
    if not reuse:
        drop_namespace(cluster, ns)
    return {"n": n, "shards": shards, "converge_one_operator": converge, "settled_rss_mib_unsharded": unsharded,
            "settled_rss_mib_per_shard": per_shard, "rollout_with_shards": rollout,
            "per_shard_during_rollout": summaries}


def converge(cluster: Cluster, ns: str, docs: list[dict], operators: list[Operator], what: str) -> dict:
    """Create `docs` at once with `operators` running; time until all are Ready."""
    n = len(docs)
    with watch_mds(cluster, ns, is_ready("v1")) as ready, \
            FirstTimes(cluster.apps.list_namespaced_deployment, (ns,), lambda d: True,
                       key=lambda d: d["metadata"]["name"].removesuffix("-stable")) as first_child:
        start = time.time()
        sent = create_all(cluster, ns, docs)
        created = time.time() - start
        wait_all(ready, n, 3 * 3600, f"{what}: ModelDeployments Ready")
    to_ready = [ready.seen[k] - sent[k] for k in sent]
    to_child = [first_child.seen[k] - sent[k] for k in sent if k in first_child.seen]
    return {"seconds_all_ready": round(max(ready.seen.values()) - start, 2), "create_seconds": round(created, 2),
            "create_to_ready_p50": percentile(to_ready, 50), "create_to_ready_p99": percentile(to_ready, 99),
            "create_to_first_child_p50": percentile(to_child, 50),
            "create_to_first_child_p99": percentile(to_child, 99)}


def run_scale(cluster: Cluster, n: int, env: dict[str, str], shards: int, save) -> dict:
    """The largest N (BENCH_PHASES=scale): N ModelDeployments with 1 replica
    each under one operator, then a quiet window spanning full resyncs (the
    operator's writes must be 0) and each resync's duration; then, with
    BENCH_SCALE_SHARDS=K > 1, the same N in a fresh namespace under K shards.
    `save(result)` after each step: a run of an hour leaves what it measured
    even if a later step fails or is stopped."""
    docs = [model(f"m{i:05d}", steps=[{"setWeight": 50}, {"pause": {"duration": "5s"}}], replicas=1)
            for i in range(n)]
    ns = fresh_namespace(cluster, f"bench-scale-{n}")
    op = Operator(cluster, ns, env)
    try:
        one = converge(cluster, ns, docs, [op], "scale, one operator")
        one.update(op.summary())
        result = {"n": n, "replicas": 1, "one_operator": one}
        save(result)
        log(f"scale N={n}: all Ready under one operator in {one['seconds_all_ready']}s "
            f"(create->first child p50 {one['create_to_first_child_p50']}s); peak RSS {one['peak_rss_mib']} MiB, "
            f"CPU {one['cpu_seconds']}s, loop lag max {one['event_loop_lag_max_seconds']}s")
        writes = NamespaceWrites(AuditLog(cluster), ns)
        # Resyncs counted from here: the quiet window spans at least two whole ones.
        first = op.probe()["resyncs"]
        wait_until(lambda: op.probe()["resyncs"] >= first + 2, timeout=3600,
                   what="two full resyncs with nothing changed", describe=op.probe)
        one["steady"] = {"writes_by_verb": writes_by_verb(writes),
                         "resync_seconds": round(op.metrics()["modeldeploy_resync_duration_seconds"], 2),
                         "settled_rss_mib": round(op.metrics()["process_resident_memory_bytes"] / 2**20, 1),
                         "event_loop_lag_max_seconds": round(op.metrics()["modeldeploy_event_loop_lag_max_seconds"], 3)}
        log(f"scale N={n}: steady {one['steady']}")
        save(result)
    finally:
        op.stop()
    # A restart at N: kopf's and the warm-up's listings of every kind, then
    # a full resync over N models planned from a cold process.
    op = Operator(cluster, ns, env, tag="-restarted")
    try:
        one["restarted"] = {"settled_rss_mib": settled_rss_mib(op, "restarted operator"),
                            "resync_seconds": round(op.metrics()["modeldeploy_resync_duration_seconds"], 2),
                            **{k: v for k, v in op.summary().items() if k in ("peak_rss_mib", "cpu_seconds")}}
    finally:
        op.stop()
    log(f"scale N={n}: restarted {one['restarted']}")
    save(result)
    if shards > 1:
        # The first namespace's deletion (N models and all their children)
        # would compete with the shards' run: it is gone first.
        cluster.kubectl("delete", "namespace", ns, "--wait=true", "--timeout=1800s", timeout=1860)
        ns = fresh_namespace(cluster, f"bench-scale-{n}-sharded")
        ops = [Operator(cluster, ns, env, extra_args=("--shard", f"{i}/{shards}"), tag=f"-shard{i}")
               for i in range(shards)]
        try:
            split = converge(cluster, ns, docs, ops, f"scale, {shards} shards")
            split["per_shard"] = [o.summary() for o in ops]
        finally:
            for o in ops:
                o.stop()
        drop_namespace(cluster, ns)
        log(f"scale N={n}: all Ready under {shards} shards in {split['seconds_all_ready']}s; per shard "
            f"RSS {[s['peak_rss_mib'] for s in split['per_shard']]} MiB, CPU {[s['cpu_seconds'] for s in split['per_shard']]}s")
        result["shards"] = {"count": shards, **split}
        save(result)
    else:
        drop_namespace(cluster, ns)
    return result


def machine(cluster: Cluster) -> dict:
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
    versions = dict(l.split("=", 1) for l in (REPO / "hack" / "versions.sh").read_text().splitlines()
                    if "=" in l and not l.startswith("#"))
    return {"cpus": os.cpu_count(), "cpu_model": cpu, "memory_gib": round(mem / 2**20, 1),
            "python": platform.python_version(), "kubernetes": versions["K8S_VERSION"],
            "kwok_nodes": len(cluster.core.list_node().items)}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    argo = results.get("argo", [])
    for key, label, runs in (
            ("direct", "direct apply (the limit)", results["direct"]), ("operator", "operator", results["operator"]),
            ("naive", "naive operator", results["naive"]),
            ("argo", "Argo Rollouts: Rollout", [r for r in argo if r["config"] == "argo-rollout"]),
            ("argo", "Argo Rollouts: Rollout+Service+PDB",
             [r for r in argo if r["config"] == "argo-rollout-service-pdb"])):
        points = sorted((r["n"], r.get("seconds_all_available", r.get("seconds_all_ready"))) for r in runs)
        if points:
            ax.plot(*zip(*points), marker="o", label=label)
    ax.set_xlabel("ModelDeployments (or Argo Rollouts) created at once (2 replicas each)")
    ax.set_ylabel("seconds until all Ready / Available")
    ax.set_title(f"Time to Ready on {results['machine']['cpus']} cores (kube {results['machine']['kubernetes']})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    # The operators run in sessions of their own (a test kills one with its
    # process group); a SIGTERM to the benchmark unwinds through the
    # `finally` blocks that stop them instead of leaving them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "100,300,1000").split(",")]
    os.environ.setdefault("MODELDEPLOY_RESYNC_SECONDS", "60")
    # The cluster `make bench` started (CLUSTER_DIR), with a connection for each client thread.
    cluster = Cluster(SESSION_CLUSTER_DIR, started_here=False, connections=CLIENT_THREADS * 2)
    install_crd(cluster)
    results: dict = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(cluster),
                     "direct": [], "operator": [], "naive": [], "argo": []}
    # On top of the tests' settings (support.operator.TEST_ENV), whose short resync this replaces.
    tuned = {"MODELDEPLOY_RESYNC_SECONDS": os.environ["MODELDEPLOY_RESYNC_SECONDS"]}
    naive = {**tuned, "MODELDEPLOY_NAIVE": "1", "MODELDEPLOY_CONCURRENCY": "1", "MODELDEPLOY_API_WORKERS": "1"}
    # BENCH_PHASES=converge: only the direct and operator convergence runs
    # (a quick check of a change); the default runs everything.
    phases = os.environ.get("BENCH_PHASES", "all")
    full = phases == "all"
    # BENCH_PHASES=argo: direct, operator and the Argo Rollouts peer only.
    argo_home = None
    if phases in ("all", "argo"):
        argo_home = argo_peer.build()
        argo_peer.install(cluster, argo_home)
        results["machine"]["argo_rollouts"] = argo_home.name
    if phases in ("all", "queue"):
        # --max-concurrent-canaries at the largest N (BENCH_MAX_CANARIES, default 20).
        results["queue"] = run_queue(cluster, max(sizes), tuned, int(os.environ.get("BENCH_MAX_CANARIES", 20)))
    if phases == "queue":
        return _write(results, plot_it=False)
    if phases == "gc":
        results["gc"] = run_gc(cluster, max(sizes), tuned)
        return _write(results, plot_it=False)
    if phases == "scale":
        # The largest N only, 1 replica per model. A pod asks for 100m of CPU
        # (its storage initializer's request), so a 64-CPU kwok node holds
        # 640: KWOK_NODES=16 for 10,000 (11 held 7,040; the rest were
        # reported InsufficientCapacity).
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        run_scale(cluster, max(sizes), tuned, int(os.environ.get("BENCH_SCALE_SHARDS", 0)),
                  save=lambda part: _write({**results, "scale": part}, plot_it=False, stamp=stamp))
        return 0
    if phases == "shards":
        results["shards"] = run_shards(cluster, max(sizes), tuned, int(os.environ.get("BENCH_SHARDS", 3)))
        return _write(results, plot_it=False)
    for n in sizes:
        results["direct"].append(run_direct(cluster, n))
        results["operator"].append(run_operator(cluster, n, tuned, "operator", extra=full and n == max(sizes)))
        if argo_home:
            results["argo"] += [run_argo(cluster, argo_home, n, with_service_and_pdb=False),
                                run_argo(cluster, argo_home, n, with_service_and_pdb=True)]
    if full:
        results["naive"].append(run_operator(cluster, max(sizes), naive, "naive"))
    for r in results["operator"] + results["argo"]:
        d = next(d for d in results["direct"] if d["n"] == r["n"])
        r["ratio_to_direct"] = round(r["seconds_all_ready"] / d["seconds_all_available"], 2)
    top = next(r for r in results["operator"] if r["n"] == max(sizes))
    for r in results["naive"]:
        r["ratio_to_operator"] = round(r["seconds_all_ready"] / top["seconds_all_ready"], 2)
    _write(results, plot_it=True)
    summary = {r["n"]: r["ratio_to_direct"] for r in results["operator"]}
    for r in results["argo"]:
        log(f"{r['config']} time / direct-apply time at N={r['n']}: {r['ratio_to_direct']}")
    log(f"operator time / direct-apply time by N: {summary}"
        + "".join(f"; naive / tuned at N={r['n']}: {r['ratio_to_operator']}" for r in results["naive"]))
    return 0


def _write(results: dict, plot_it: bool, stamp: str | None = None) -> int:
    stamp = stamp or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = REPO / "bench" / "results" / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    if plot_it:
        plot(results, out.with_suffix(".png"))
    log(f"results: {out.relative_to(REPO)}" + (f" and {out.with_suffix('.png').relative_to(REPO)}" if plot_it else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
