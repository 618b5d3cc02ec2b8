"""A real MLflow tracking server and model registry for the tests of models:/
URIs: `mlflow server` (PyPI's mlflow) on a free port, sqlite backend store,
artifacts proxied by the server itself (--serve-artifacts).

mlflow runs in a venv of its own, cached outside the clone like the model
store's (~/.cache/modeldeploy/mlflow-registry-<hash>/), built from the
`mlflow-registry` group of pyproject.toml the first time (about 3 minutes on
2 cores): it pins numpy, pandas, pydantic and friends to versions of its own,
so it does not share the operator's venv. The tests talk to the server
through its REST API only (registered models, runs, versions, aliases), as
the operator does."""
from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.model_store import free_port
from support.process import stop_process
from support.tool_venv import group_venv
from support.waiting import wait_until

GROUP = "mlflow-registry"


def registry_venv() -> Path:
    """mlflow's venv (the `mlflow-registry` group of pyproject.toml)."""
    return group_venv(GROUP, "mlflow registry", "about 3 min")


@dataclass
class MlflowServer:
    """One `mlflow server`; stop() and start() again on the same port and
    store play an outage."""

    workdir: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MlflowServer":
        venv = registry_venv()
        log_path = self.workdir / "mlflow.log"
        with log_path.open("a") as log:
            self.proc = subprocess.Popen(
                [str(venv / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
                 "--workers", "1", "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
                 "--serve-artifacts", "--artifacts-destination", str(self.workdir / "artifacts")],
                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "MLFLOW_TRACKING_URI": ""})
        wait_until(lambda: self.proc.poll() is None and _answers(f"{self.url}/health"), timeout=120,
                   what=f"mlflow server on port {self.port}",
                   describe=lambda: (self.proc.poll(), log_path.read_text()[-1500:]))
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The server's workers are its children: stop the whole group.
            os.killpg(self.proc.pid, 15)
            stop_process(self.proc)

    # -- the registry, through MLflow's REST API ---------------------------------

    def call(self, method: str, path: str, body: dict | None = None, query: str = "") -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/api/2.0/mlflow/{path}{query}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            # Generous: on the shared 2 cores under load a first runs/create took more than 10 s.
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"mlflow {method} {path}: HTTP {exc.code} {exc.read()[:500]!r}") from None

    def register(self, name: str, source: str) -> tuple[str, str]:
        """A run, then a new version of registered model `name` from it,
        with its artifacts at `source`: (version, run id)."""
        try:
            self.call("POST", "registered-models/create", {"name": name})
        except AssertionError as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc):
                raise
        run = self.call("POST", "runs/create", {"experiment_id": "0", "run_name": f"train-{name}"})["run"]
        run_id = run["info"]["run_id"]
        version = self.call("POST", "model-versions/create",
                            {"name": name, "source": source, "run_id": run_id})["model_version"]["version"]
        return str(version), run_id

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.call("POST", "registered-models/alias", {"name": name, "alias": alias, "version": version})


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@contextmanager
def running_mlflow(workdir: Path):
    workdir.mkdir(parents=True, exist_ok=True)
    server = MlflowServer(workdir=workdir, port=free_port("127.0.0.1"))
    try:
        yield server.start()
    finally:
        server.stop()
