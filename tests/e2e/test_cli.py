"""The `modeldeploy` CLI as a person at a terminal uses it, on the real
control plane with the session's operator: watch a canary, promote it, abort
one, read the history, follow changes live, and get clear exit codes."""
from __future__ import annotations

import signal
import socket
import subprocess

import pytest

from support.canary import GATEWAY, model_v, route_weights, wait_phase
from support.cluster import REPO
from support.models import apply_md, get_md, is_true, model_deployment, status_view, wait_ready
from support.waiting import wait_until

pytestmark = pytest.mark.e2e

MODELDEPLOY = str(REPO / ".venv" / "bin" / "modeldeploy")
APPROVAL_STEPS = {"steps": [{"setWeight": 50}, {"pause": {}}]}


def modeldeploy(cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MODELDEPLOY, *args], env=cluster.env, capture_output=True, text=True, timeout=60)


def paused_canary(cluster, namespace, name):
    """Given v1 serving and v2 held at 50% by a pause that waits for approval."""
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout=APPROVAL_STEPS)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, name)
    apply_md(cluster, namespace, model_v(doc, "v2"))
    wait_phase(cluster, namespace, name, "Paused")
    return doc


def test_status_shows_the_canary_then_promote_finishes_it_and_history_records_it(cluster, namespace, operator):
    paused_canary(cluster, namespace, "fraud")

    shown = modeldeploy(cluster, "status", "fraud", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    view = shown.stdout
    assert view.startswith(f"fraud in {namespace}: Paused\n")
    assert "stable ██████████░░░░░░░░░░ 50% | canary 50%" in view
    assert "  stable    v1  revision " in view and "  canary    v2  revision " in view
    assert "step      2/2  pause: waiting for approval: set spec.rollout.approvedVersion to v2" in view
    assert "\x1b" not in view  # piped: plain text

    promoted = modeldeploy(cluster, "promote", "fraud", "-n", namespace)
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith("promote requested: fraud will skip the remaining 1 step and promote v2 ")
    done = wait_until(lambda: is_true(m := get_md(cluster, namespace, "fraud"), "Ready")
                      and m["status"]["stable"]["modelVersion"] == "v2" and m,
                      timeout=60, what="promotion", describe=lambda: status_view(get_md(cluster, namespace, "fraud")))
    assert "modeldeploy.io/promote" not in (done["metadata"].get("annotations") or {})

    history = modeldeploy(cluster, "history", "fraud", "-n", namespace)
    assert history.returncode == 0, history.stderr
    rows = [line.split() for line in history.stdout.splitlines()]
    assert rows[0] == ["TIME", "VERSION", "REVISION", "URI", "RESULT"]
    assert [(r[1], r[3], r[4]) for r in rows[1:]] == [
        ("v1", "s3://models/fraud/v1", "Deployed"), ("v2", "s3://models/fraud/v2", "Promoted")]

    again = modeldeploy(cluster, "promote", "fraud", "-n", namespace)
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == "modeldeploy: nothing to promote: fraud has no canary in flight (stable v2 serves alone)\n"


def test_abort_rolls_the_canary_back(cluster, namespace, operator):
    paused_canary(cluster, namespace, "risky")

    aborted = modeldeploy(cluster, "abort", "risky", "-n", namespace)
    assert aborted.returncode == 0, aborted.stderr
    assert aborted.stdout.startswith("abort requested: risky will roll back v2 ")
    assert aborted.stdout.rstrip().endswith("and send all traffic to stable v1")
    md = wait_phase(cluster, namespace, "risky", "RolledBack", timeout=30)
    assert md["status"]["stable"]["modelVersion"] == "v1"
    wait_until(lambda: route_weights(cluster, namespace, "risky") == (100, 0), timeout=30, what="traffic at 100/0")

    view = modeldeploy(cluster, "status", "risky", "-n", namespace).stdout
    assert view.startswith(f"risky in {namespace}: RolledBack\n")
    assert "rolled back v2" in view and "stable ████████████████████ 100% | canary 0%" in view
    assert modeldeploy(cluster, "history", "risky", "-n", namespace).stdout.split()[-1] == "RolledBack"


def test_status_watch_prints_each_change_and_ctrl_c_exits_0(cluster, namespace, operator, tmp_path):
    doc = model_deployment("live", replicas=2, traffic=GATEWAY, rollout=APPROVAL_STEPS)
    apply_md(cluster, namespace, doc)
    wait_ready(cluster, namespace, "live")
    log = tmp_path / "watch.out"
    with log.open("w") as out:
        proc = subprocess.Popen([MODELDEPLOY, "status", "live", "-n", namespace, "-w"], env=cluster.env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: f"live in {namespace}: Ready" in log.read_text(), timeout=30,
                   what="the first view", describe=log.read_text)

        apply_md(cluster, namespace, model_v(doc, "v2"))
        wait_until(lambda: "\n---" in log.read_text() and f"live in {namespace}: Paused" in log.read_text(),
                   timeout=60, what="the view redrawn with the canary paused", describe=log.read_text)
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert code == 0, log.read_text()[-2000:]
    text = log.read_text()
    assert "Traceback" not in text and "\x1b" not in text
    assert "stable ██████████░░░░░░░░░░ 50% | canary 50%" in text


def test_a_missing_model_deployment_exits_3(cluster, namespace):
    for command in ("status", "history", "promote", "abort"):
        result = modeldeploy(cluster, command, "fraud", "-n", namespace)
        assert (result.returncode, result.stdout) == (3, ""), result.stderr
        assert result.stderr == (f"modeldeploy: modeldeployment fraud not found in namespace {namespace} "
                                 "(kubectl get md -A lists them)\n")


def test_an_unreachable_api_server_exits_4(cluster, tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago and now has no listener
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        f"clusters: [{{name: gone, cluster: {{server: 'https://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: gone, context: {cluster: gone, user: u}}]\n")
    result = modeldeploy(cluster, "status", "fraud", "--kubeconfig", str(kubeconfig))
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"modeldeploy: cannot reach the API server at https://127.0.0.1:{port} ")
    assert "make cluster-up" in result.stderr
