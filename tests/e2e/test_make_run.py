"""`make run` as a person at a terminal uses it: it installs the CRD, serves
ModelDeployments, and Ctrl-C stops it cleanly within seconds."""
from __future__ import annotations

import os
import signal
import subprocess
import uuid

import pytest

from support.cluster import REPO
from support.waiting import wait_until


@pytest.mark.e2e
def test_make_run_serves_and_stops_on_ctrl_c(cluster, tmp_path):
    namespace = f"run-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    log = tmp_path / "operator.log"
    with log.open("w") as out:
        proc = subprocess.Popen(["make", "--no-print-directory", "run", f"RUN_ARGS=--namespace {namespace}"],
                                cwd=REPO, env=cluster.env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until(lambda: "Initial authentication has finished" in log.read_text(), timeout=60,
                   what="the operator to start", describe=lambda: log.read_text()[-2000:])
        cluster.kubectl("apply", "-n", namespace, "-f", str(REPO / "examples" / "01-sklearn-fraud.yaml"))
        cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "md/fraud-detector", "--timeout=90s",
                        timeout=100)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        try:
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    text = log.read_text()
    assert "CRD modeldeployments.modeldeploy.io installed" in text
    assert "Operator is stopping" in text and "Activity 'stop' succeeded" in text, text[-2000:]
