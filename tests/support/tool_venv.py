"""Venvs for the servers the tests run beside the cluster (the S3 model
store, the MLflow registry): one optional-dependency group of pyproject.toml
each, installed outside .venv and outside the clone, once per set of
requirements and Python version."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("MODELDEPLOY_CACHE", Path.home() / ".cache" / "modeldeploy"))


def requirements(group: str) -> list[str]:
    """The optional-dependency `group` of pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return list(project["optional-dependencies"][group])


def group_venv(group: str, what: str, takes: str) -> Path:
    """The venv of `group`, built the first time with a progress line naming
    `what` and how long it `takes`; concurrent test workers wait for the one
    building it."""
    reqs = requirements(group)
    key = hashlib.sha256(json.dumps([reqs, sys.version_info[:2]]).encode()).hexdigest()[:10]
    home = CACHE / f"{group}-{key}"
    venv, done = home / "venv", home / "venv" / ".installed"
    if done.exists():
        return venv
    home.mkdir(parents=True, exist_ok=True)
    with (home / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            print(f"{what}: installing {' '.join(reqs)} into {venv} (first time only, {takes})",
                  file=sys.stderr, flush=True)
            log = home / "install.log"
            with log.open("w") as out:
                steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
                         [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", *reqs]]
                for step in steps:
                    if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                        tail = log.read_text()[-2000:]
                        raise AssertionError(f"{what}: {' '.join(step)} failed ({log}):\n{tail}")
            done.touch()
    return venv
