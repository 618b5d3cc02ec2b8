"""`make demo`: the whole story on the local control plane's real node
(real-0: a kubelet and containerd, started with the control plane), with
real MLServer pods serving a model the demo trains. About 2.5 minutes on a
warm machine with the control plane up and the images on its node; a
control plane it starts (or a new one) adds its start and the images' import
into the node, about 1 to 2 minutes. The first run on a machine also builds
the serving images (about 5 minutes on 2 cores, cached in
~/.cache/modeldeploy/images afterwards).

Starts the control plane if needed (with the real node), builds or finds the
serving images and imports them into real-0, starts an S3 model store (moto)
holding three versions of a scikit-learn model (v1, v2 with other
predictions, v3 random bytes), runs the operator with the runtime table of
the local images (`modeldeploy run --install-crd --runtimes FILE`), then:
deploys v1 and prints a real prediction through the Service's ClusterIP,
ships v2 as a canary (1 pod next to 2 stable) and counts which version
answered real requests next to status.traffic, promotes it, ships the broken
v3 and counts the requests v2 answered while v3 crash-loops and is rolled
back. Prints the status as it goes and stops everything it started.

Without the real node (REAL_NODE=0, or a node that failed to start) or the
images, it fails saying which: it never falls back to simulated pods.

The control plane is the one in $CLUSTER_DIR (default .cluster/), as for
hack/cluster.sh and the tests. The real-node pieces are the tests' own
(tests/support: real_node, model_store, inference).
"""
from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# The tests' helpers for the real node, the model store and inference.
sys.path.insert(0, str(REPO / "tests"))

from support import real_node  # noqa: E402
from support.cluster import Cluster  # noqa: E402
from support.inference import answers, model_on_real_node, requests_meanwhile, sklearn_from_store  # noqa: E402
from support.model_store import pod_facing_host, running_model_store, train_sklearn_model  # noqa: E402

CLUSTER_DIR = Path(os.environ.get("CLUSTER_DIR") or REPO / ".cluster")
NAMESPACE = "modeldeploy-demo"
NAME = "fraud-detector"
SELECTOR = f"modeldeploy.io/name={NAME}"
STEPS = 8
BAR = 20
CANARY_REQUESTS = 200
# Set once the control plane is up.
CLUSTER: Cluster | None = None
KUBECTL: str | None = None
ENV: dict[str, str] = {}


def say(step: int, text: str) -> None:
    print(f"\n[{step}/{STEPS}] {text}", flush=True)


def info(text: str) -> None:
    print(f"  {text}", flush=True)


def fail(text: str) -> None:
    sys.exit(f"demo: {text}")


def sh(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, input=input, capture_output=True, text=True, env=ENV)
    if check and proc.returncode != 0:
        fail(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def kubectl(*args: str, **kw) -> subprocess.CompletedProcess:
    return sh(KUBECTL, *args, **kw)


def read_status() -> dict:
    proc = kubectl("-n", NAMESPACE, "get", "md", NAME, "-o", "yaml", check=False)
    return (yaml.safe_load(proc.stdout) or {}).get("status") or {} if proc.returncode == 0 else {}


def line(status: dict) -> str:
    stable = status.get("stable") or {}
    canary = status.get("canary") or {}
    traffic = status.get("traffic") or {}
    rollout = status.get("rollout") or {}
    weight = int(traffic.get("canary") or 0)
    filled = round(BAR * (100 - weight) / 100)
    text = (f"  {status.get('phase', '-'):<11} stable {stable.get('modelVersion', '-'):<3} "
            f"{'█' * filled}{'░' * (BAR - filled)} {100 - weight:>3}% ({stable.get('readyReplicas', 0)} ready)")
    if canary:
        text += f" | canary {canary.get('modelVersion')} {weight}% ({canary.get('readyReplicas', 0)} ready)"
        if rollout.get("totalSteps"):
            text += f"  step {rollout.get('step', 0)}/{rollout['totalSteps']}"
    return text


def pods_report() -> str:
    try:
        return real_node.pod_report(CLUSTER, NAMESPACE, SELECTOR)
    except Exception as exc:  # noqa: BLE001 - a report about a failure must not hide it
        return f"(no pod report: {exc!r})"


def follow(until, timeout: float) -> dict:
    """Print a line whenever the status changes, until `until(status)`."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        status = read_status()
        shown = line(status)
        if shown != last:
            print(shown, flush=True)
            last = shown
        if until(status):
            return status
        time.sleep(0.5)
    fail(f"timed out after {timeout:.0f}s; status: {json.dumps(read_status())}\nthe pods:\n{pods_report()}")


def conditions(status: dict) -> dict:
    return {c["type"]: c for c in status.get("conditions", [])}


def ready_on(version: str):
    return lambda s: conditions(s).get("Ready", {}).get("status") == "True" and \
        (s.get("stable") or {}).get("modelVersion") == version and not s.get("canary")


def shown_path(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_operator_ready(operator: subprocess.Popen, health_url: str, log: Path, timeout: float = 120) -> float:
    """Until the operator's probe (kopf's liveness endpoint, served once its
    startup finished; `run --install-crd` starts it only after the API serves
    the CRD) says ready. Fails with the operator's log if it exits or is late."""
    started, seen = time.monotonic(), "no answer yet"
    while time.monotonic() - started < timeout:
        if operator.poll() is not None:
            fail(f"the operator exited with {operator.returncode}; its log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(health_url, timeout=2) as resp:
                body = json.loads(resp.read())
            if body.get("ready") is True:
                return time.monotonic() - started
            seen = f"probe answered {body}"
        except OSError as exc:
            seen = f"probe not answering ({exc})"
        time.sleep(0.2)
    fail(f"the operator was not ready after {timeout:.0f}s ({seen}); its log:\n{log.read_text()[-3000:]}")


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got is not None and got is not False:  # a class 0 is an answer
            return got
        time.sleep(0.5)
    fail(f"timed out after {timeout:.0f}s waiting for {what}\nthe pods:\n{pods_report()}")


def only_stable_pods(count: int):
    """True once the stable pods are the only ones left (none terminating):
    until then a request may reach a replaced pod whose MLServer got SIGTERM."""
    def check() -> bool:
        pods = CLUSTER.core.list_namespaced_pod(NAMESPACE, label_selector=SELECTOR).items
        return len(pods) == count and not any(p.metadata.deletion_timestamp for p in pods)
    return check


def one_answer(url: str, row: list[float], labels: dict):
    """One prediction, or None if the request failed or no known model gave it."""
    [got] = answers(url, NAME, row, 1, workers=1)
    return got if got in labels else None


def tally(seen: list, labels: dict) -> str:
    counts = Counter(labels.get(a, "errors") for a in seen)
    return ", ".join(f"{who} {counts[who]}" for who in [*labels.values(), "errors"] if counts[who] or who != "errors")


def serving_images() -> real_node.ServingImages:
    """hack/images/build.sh (a no-op on a warm cache), then the images real-0 lacks imported into it."""
    cached = subprocess.run([sys.executable, str(REPO / "hack" / "images" / "build.py"), "--check-cache"],
                            capture_output=True).returncode == 0
    started = time.monotonic()
    if not cached:
        info("building MLServer 1.7.1 (sklearn) and the kserve storage initializer into ~/.cache/modeldeploy/images")
        info("first time on this machine only: about 5 to 6 min on 2 cores; progress below")
    try:
        images = real_node.build_serving_images()
    except AssertionError as exc:
        fail(f"the serving images could not be built: {exc}")
    built = time.monotonic() - started
    info(f"images built in {built:.0f}s" if not cached else f"images found in the cache ({built:.1f}s)")
    started = time.monotonic()
    try:
        imported = real_node.import_images(CLUSTER, images)
    except AssertionError as exc:
        fail(f"importing the serving images into {real_node.NAME} failed: {exc}")
    if imported:
        info(f"imported into {real_node.NAME}'s containerd in {time.monotonic() - started:.0f}s: "
             + ", ".join(imported))
    else:
        info(f"{real_node.NAME} already holds them")
    return images


def start_cluster(cluster_env: dict) -> bool:
    """The control plane in CLUSTER_DIR, started unless up; whether it was up."""
    cluster_was_up = subprocess.run([REPO / "hack" / "cluster.sh", "status"], capture_output=True,
                                    env=cluster_env).returncode == 0
    if not cluster_was_up and os.environ.get("REAL_NODE") == "0":
        fail("REAL_NODE=0: the demo runs real models on the real node, which REAL_NODE=0 leaves out; unset it")
    say(1, "local control plane and its real node: " + ("already up" if cluster_was_up
                                                       else "starting (builds binaries if missing)"))
    if not cluster_was_up:
        subprocess.run([REPO / "hack" / "cluster.sh", "up"], check=True, stdout=subprocess.DEVNULL, env=cluster_env)
    return cluster_was_up


def main() -> int:
    started_at = time.monotonic()
    cluster_env = {**os.environ, "CLUSTER_DIR": str(CLUSTER_DIR)}
    cluster_was_up = start_cluster(cluster_env)
    try:
        story(cluster_was_up)
    finally:
        # The model store stopped with the story; the control plane last, and only if the demo started it.
        if not cluster_was_up:
            subprocess.run([REPO / "hack" / "cluster.sh", "down"], stdout=subprocess.DEVNULL, env=cluster_env)
    print(f"\ndemo finished in {time.monotonic() - started_at:.0f}s", flush=True)
    return 0


def story(cluster_was_up: bool) -> None:
    global ENV, KUBECTL, CLUSTER
    operator = None
    with contextlib.ExitStack() as stack:
        try:
            CLUSTER = Cluster(dir=CLUSTER_DIR, started_here=not cluster_was_up)
            KUBECTL = str(CLUSTER.bin_dir / "kubectl")
            ENV = {**os.environ, "KUBECONFIG": str(CLUSTER.kubeconfig)}
            try:
                real_node.require(CLUSTER)
            except AssertionError as exc:
                fail(f"the demo runs on the real node {real_node.NAME}, which this control plane lacks: {exc}")
            host = pod_facing_host(CLUSTER_DIR)
            if not host:
                fail(f"no NODE_HOST_IP in {CLUSTER_DIR / 'ports'}: pods on {real_node.NAME} could not reach "
                     "the model store")
            info(f"{real_node.NAME} is Ready: pods that select it run real containers (containerd)")

            say(2, "serving images for the real node")
            images = serving_images()

            say(3, "training the model, uploading it to an S3 model store, starting the operator")
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="modeldeploy-demo-")))
            v1, sample = train_sklearn_model(work / "v1")
            v2, _ = train_sklearn_model(work / "v2", variant=2)
            raw = sample[0]
            row = [float(x) for x in raw]
            labels = {v1.predict([raw])[0].item(): "v1", v2.predict([raw])[0].item(): "v2"}
            (work / "v3").mkdir()
            (work / "v3" / "model.joblib").write_bytes(random.Random(3).randbytes(4096))
            store = stack.enter_context(running_model_store(work / "store", bind=host))
            store.put({f"{NAME}/{v}/model.joblib": work / v / "model.joblib" for v in ("v1", "v2", "v3")})
            info(f"model store (moto) at {store.endpoint_for(host)}: {', '.join(store.keys(NAME))}; "
                 "v3 is random bytes")
            # A namespace left by an earlier demo may still be terminating: start clean.
            kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s")
            kubectl("create", "namespace", NAMESPACE)
            kubectl("-n", NAMESPACE, "apply", "-f", "-", input=yaml.safe_dump(store.secret("model-store", host)))
            info("the user's credentials: Secret model-store (spec.model.credentials)")
            log_path = CLUSTER_DIR / "logs" / "demo-operator.log"
            health_url = f"http://127.0.0.1:{free_port()}/healthz"
            with log_path.open("w") as log:
                operator = subprocess.Popen(
                    [str(REPO / ".venv" / "bin" / "modeldeploy"), "run", "--install-crd", "--namespace", NAMESPACE,
                     "--runtimes", str(images.runtimes), f"--liveness={health_url}"],
                    env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            took = wait_operator_ready(operator, health_url, log_path)
            info(f"the operator is ready ({took:.1f}s; runtimes {images.runtimes.name}, "
                 f"log {shown_path(log_path)}): the API serves ModelDeployments")
            doc = model_on_real_node(yaml.safe_load((REPO / "examples" / "demo" / f"{NAME}.yaml").read_text()))

            def version(v: str) -> str:
                return yaml.safe_dump(sklearn_from_store(doc, store, f"{NAME}/{v}", v))

            say(4, f"deploying {NAME} v1 on {real_node.NAME} (2 MLServer pods, the replicas provider)")
            kubectl("-n", NAMESPACE, "apply", "-f", "-", input=version("v1"))
            follow(ready_on("v1"), timeout=240)
            url = f"http://{CLUSTER.core.read_namespaced_service(NAME, NAMESPACE).spec.cluster_ip}"
            # kube-proxy may take a moment to route to the new pods: the first answer, retried.
            answer = wait_for(lambda: one_answer(url, row, labels), timeout=60, what="a first answer from v1")
            info(f"a real prediction: POST {url}/v2/models/{NAME}/infer {row} -> class {answer} "
                 f"(from {labels[answer]})")

            say(5, "shipping v2 as a canary: setWeight 34 (1 canary pod next to 2 stable), then an open pause")
            kubectl("-n", NAMESPACE, "apply", "-f", "-", input=version("v2"))
            status = follow(lambda s: s.get("phase") == "Paused" and (s.get("canary") or {}).get("readyReplicas") == 1
                            and (s.get("stable") or {}).get("readyReplicas") == 2, timeout=240)
            # The Service's endpoints take the canary's pod a moment after it is ready.
            wait_for(lambda: labels.get(one_answer(url, row, labels)) == "v2", timeout=60,
                     what="a first answer from the canary through the Service")
            seen = answers(url, NAME, row, CANARY_REQUESTS)
            traffic = read_status().get("traffic") or status.get("traffic") or {}
            info(f"{CANARY_REQUESTS} real requests: {tally(seen, labels)} "
                 f"(status.traffic: stable {traffic.get('stable')}%, canary {traffic.get('canary')}%)")
            info("promoting: kubectl annotate md fraud-detector modeldeploy.io/promote=true")
            kubectl("-n", NAMESPACE, "annotate", "md", NAME, "modeldeploy.io/promote=true")
            follow(ready_on("v2"), timeout=240)
            wait_for(only_stable_pods(2), timeout=120, what="the replaced pods to terminate")
            after = answers(url, NAME, row, 50)
            info(f"promoted: v2 is the stable revision; 50 real requests: {tally(after, labels)}")

            say(6, "shipping v3, random bytes for a model: MLServer exits, the pod crash-loops, the operator rolls back")
            # One request at a time, about 20 a second: the 2 cores also run the pods.
            with requests_meanwhile(url, NAME, row, pause=0.05) as results:
                shipped = time.monotonic()
                kubectl("-n", NAMESPACE, "apply", "-f", "-", input=version("v3"))
                status = follow(lambda s: s.get("phase") == "RolledBack", timeout=240)
            info(f"rolled back: {conditions(status)['Stalled']['message']}")
            info(f"while v3 was tried and rolled back ({time.monotonic() - shipped:.0f}s), "
                 f"{len(results)} real requests: {tally(results, labels)}")

            say(7, "revision history (kubectl get md shows the same at a glance)")
            for entry in read_status().get("history", []):
                info(f"{entry['time']}  {entry['modelVersion']:<4} {entry['revision']}  {entry['result']}")
            print(kubectl("-n", NAMESPACE, "get", "md").stdout, end="")
        finally:
            say(8, "cleaning up what the demo started: the operator, the model store, the namespace"
                + ("" if cluster_was_up else ", the control plane"))
            if operator is not None:
                os.killpg(operator.pid, signal.SIGINT)
                try:
                    operator.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(operator.pid, signal.SIGKILL)
            if KUBECTL:
                kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


if __name__ == "__main__":
    sys.exit(main())
