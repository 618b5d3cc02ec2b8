"""`make demo`: the whole story on the local control plane, in about 20
seconds on a warm machine (a cold one first builds the binaries once).

Starts the control plane if needed, runs the operator (installing the CRD)
and waits until it reports ready, deploys a model, ships v2 through a canary
to promotion, then ships a v3 whose pods crash and watches it roll back,
printing the status as it goes. Stops everything it started.

The control plane is the one in $CLUSTER_DIR (default .cluster/), as for
hack/cluster.sh and the tests.
"""
from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER_DIR = Path(os.environ.get("CLUSTER_DIR") or REPO / ".cluster")
NAMESPACE = "modeldeploy-demo"
NAME = "fraud-detector"
STEPS = 7
BAR = 20


def say(step: int, text: str) -> None:
    print(f"\n[{step}/{STEPS}] {text}", flush=True)


def sh(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, input=input, capture_output=True, text=True, env=ENV)
    if check and proc.returncode != 0:
        sys.exit(f"demo: {' '.join(args)} failed: {proc.stderr.strip()}")
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
            f"{'█' * filled}{'░' * (BAR - filled)} {100 - weight:>3}%")
    if canary:
        text += f" | canary {canary.get('modelVersion')} {weight}% ({canary.get('readyReplicas', 0)} ready)"
        if rollout.get("totalSteps"):
            text += f"  step {rollout.get('step', 0)}/{rollout['totalSteps']}"
    return text


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
    sys.exit(f"demo: timed out after {timeout:.0f}s; status: {read_status()}")


def conditions(status: dict) -> dict:
    return {c["type"]: c for c in status.get("conditions", [])}


def ready_on(version: str):
    return lambda s: conditions(s).get("Ready", {}).get("status") == "True" and \
        (s.get("stable") or {}).get("modelVersion") == version and not s.get("canary")


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
            sys.exit(f"demo: the operator exited with {operator.returncode}; its log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(health_url, timeout=2) as resp:
                body = json.loads(resp.read())
            if body.get("ready") is True:
                return time.monotonic() - started
            seen = f"probe answered {body}"
        except OSError as exc:
            seen = f"probe not answering ({exc})"
        time.sleep(0.2)
    sys.exit(f"demo: the operator was not ready after {timeout:.0f}s ({seen}); its log:\n{log.read_text()[-3000:]}")


def with_version(doc: dict, version: str, crash: bool = False) -> str:
    new = copy.deepcopy(doc)
    new["spec"]["model"].update(version=version, uri=f"s3://models/fraud/{version}")
    if crash:
        # The simulated kubelet crash-loops pods carrying this label: a model
        # that fails to load.
        new["spec"]["podMetadata"] = {"labels": {"sim.modeldeploy.io/behavior": "crashloop"}}
    return yaml.safe_dump(new)


def main() -> int:
    global ENV, KUBECONFIG, KUBECTL
    started_at = time.monotonic()
    cluster_env = {**os.environ, "CLUSTER_DIR": str(CLUSTER_DIR)}
    cluster_was_up = subprocess.run([REPO / "hack" / "cluster.sh", "status"], capture_output=True,
                                    env=cluster_env).returncode == 0
    say(1, "local control plane: " + ("already up" if cluster_was_up else "starting (builds binaries if missing)"))
    if not cluster_was_up:
        subprocess.run([REPO / "hack" / "cluster.sh", "up"], check=True, stdout=subprocess.DEVNULL, env=cluster_env)
    ports = dict(l.split("=", 1) for l in (CLUSTER_DIR / "ports").read_text().splitlines() if "=" in l)
    KUBECONFIG = str(CLUSTER_DIR / "kubeconfig")
    KUBECTL = str(Path(ports["BIN_DIR"]) / "kubectl")
    ENV = {**os.environ, "KUBECONFIG": KUBECONFIG}
    operator = None
    try:
        log_path = CLUSTER_DIR / "logs" / "demo-operator.log"
        say(2, f"installing the CRD and starting the operator (log: {os.path.relpath(log_path, REPO)})")
        # A namespace left by an earlier demo may still be terminating: start clean.
        kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s")
        kubectl("create", "namespace", NAMESPACE)
        health_url = f"http://127.0.0.1:{free_port()}/healthz"
        with log_path.open("w") as log:
            operator = subprocess.Popen([str(REPO / ".venv" / "bin" / "modeldeploy"), "run", "--install-crd",
                                         "--namespace", NAMESPACE, f"--liveness={health_url}"],
                                        env=ENV, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        took = wait_operator_ready(operator, health_url, log_path)
        print(f"  the operator is ready ({took:.1f}s): the API serves ModelDeployments", flush=True)
        doc = yaml.safe_load((REPO / "examples" / "demo" / "fraud-detector.yaml").read_text())

        say(3, "deploying fraud-detector v1 (4 replicas, Gateway API traffic)")
        kubectl("-n", NAMESPACE, "apply", "-f", "-", input=yaml.safe_dump(doc))
        follow(ready_on("v1"), timeout=120)

        say(4, "shipping v2 as a canary: 25% -> pause -> 50% -> pause -> promote")
        kubectl("-n", NAMESPACE, "apply", "-f", "-", input=with_version(doc, "v2"))
        follow(ready_on("v2"), timeout=120)
        print("  promoted: v2 is the stable revision", flush=True)

        say(5, "shipping v3, whose pods crash on start: the operator rolls it back")
        kubectl("-n", NAMESPACE, "apply", "-f", "-", input=with_version(doc, "v3", crash=True))
        status = follow(lambda s: s.get("phase") == "RolledBack", timeout=120)
        print(f"  rolled back: {conditions(status)['Stalled']['message']}", flush=True)

        say(6, "revision history (kubectl get md shows the same at a glance)")
        for entry in read_status().get("history", []):
            print(f"  {entry['time']}  {entry['modelVersion']:<4} {entry['revision']}  {entry['result']}")
        print(kubectl("-n", NAMESPACE, "get", "md").stdout, end="")
    finally:
        say(7, "cleaning up what the demo started")
        if operator is not None:
            os.killpg(operator.pid, signal.SIGINT)
            operator.wait(timeout=20)
        kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        if not cluster_was_up:
            subprocess.run([REPO / "hack" / "cluster.sh", "down"], stdout=subprocess.DEVNULL, env=cluster_env)
    print(f"\ndemo finished in {time.monotonic() - started_at:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
