"""`make demo`, run as a new user would on a warm machine."""
from __future__ import annotations

import subprocess
import time

import pytest

from support.cluster import REPO, cluster_is_up


@pytest.mark.e2e
def test_make_demo_tells_the_whole_story_and_cleans_up(cluster):
    started = time.monotonic()
    proc = subprocess.run(["make", "--no-print-directory", "demo"], cwd=REPO, env=cluster.env,
                          capture_output=True, text=True, timeout=600)
    took = time.monotonic() - started
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-2000:]
    for step in range(1, 8):
        assert f"[{step}/7]" in out, out
    assert "promoted: v2 is the stable revision" in out
    assert "rolled back: rolled back v3" in out and "serves the stable v2" in out
    assert "Promoted" in out and "RolledBack" in out  # the history it prints
    print(f"make demo (warm) took {took:.0f}s")
    # It stopped what it started and left the cluster it found.
    assert cluster_is_up(cluster.dir)
    assert "fraud-detector" not in cluster.kubectl("get", "md", "-A").stdout or \
        cluster.get_json("namespace", "modeldeploy-demo").get("status", {}).get("phase") == "Terminating"
