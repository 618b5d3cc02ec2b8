"""`make demo`: the whole story on the local control plane, in about a minute.

Starts the control plane if needed, runs the operator, deploys a model, ships
v2 through a canary to promotion, then ships a v3 whose pods crash and watches
it roll back, printing the status as it goes. Stops everything it started.
"""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
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
    cluster_was_up = subprocess.run([REPO / "hack" / "cluster.sh", "status"], capture_output=True).returncode == 0
    say(1, "local control plane: " + ("already up" if cluster_was_up else "starting (builds binaries if missing)"))
    if not cluster_was_up:
        subprocess.run([REPO / "hack" / "cluster.sh", "up"], check=True, stdout=subprocess.DEVNULL)
    ports = dict(l.split("=", 1) for l in (REPO / ".cluster" / "ports").read_text().splitlines() if "=" in l)
    KUBECONFIG = str(REPO / ".cluster" / "kubeconfig")
    KUBECTL = str(Path(ports["BIN_DIR"]) / "kubectl")
    ENV = {**os.environ, "KUBECONFIG": KUBECONFIG}
    operator = None
    try:
        say(2, "installing the CRD and starting the operator (log: .cluster/logs/demo-operator.log)")
        # A namespace left by an earlier demo may still be terminating: start clean.
        kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=true", "--timeout=120s")
        kubectl("create", "namespace", NAMESPACE)
        log = (REPO / ".cluster" / "logs" / "demo-operator.log").open("w")
        operator = subprocess.Popen([str(REPO / ".venv" / "bin" / "modeldeploy"), "run", "--install-crd",
                                     "--namespace", NAMESPACE], env=ENV, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
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
            subprocess.run([REPO / "hack" / "cluster.sh", "down"], stdout=subprocess.DEVNULL)
    print(f"\ndemo finished in {time.monotonic() - started_at:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
