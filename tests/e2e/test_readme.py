"""The README is the user's manual: its runnable commands must work as
written, and every make target it names must exist."""
from __future__ import annotations

import re
import subprocess

import pytest

from support.cluster import REPO

FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.S | re.M)


def shell_blocks(info: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    return [body for tag, body in FENCE.findall(text) if tag.split() and tag.split()[0] == "sh"
            and (info in tag.split()[1:] if info else True)]


def test_every_make_target_the_readme_names_exists():
    targets = {m for block in shell_blocks("") for m in re.findall(r"\bmake ([a-z][a-z-]*)", block)}
    assert targets, "the README names no make target?"
    for target in sorted(targets):
        proc = subprocess.run(["make", "-n", target], cwd=REPO, capture_output=True, text=True)
        assert proc.returncode == 0, f"make {target}: {proc.stderr}"


@pytest.mark.e2e
def test_runnable_readme_blocks_run_as_written(cluster):
    blocks = shell_blocks("runnable")
    assert blocks
    for block in blocks:
        proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=REPO, env=cluster.env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"README block failed:\n{block}\n{proc.stdout}\n{proc.stderr}"
