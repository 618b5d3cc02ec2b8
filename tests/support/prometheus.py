"""A real Prometheus server (Debian's `prometheus` package) scraping either a
small exporter the test controls (per-revision request and error rates, so a
canary's analysis sees the numbers the test chooses), or the model servers
themselves on the real node (`scraping_model_servers`)."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from support.operator import free_port
from support.process import stop_process
from support.waiting import wait_until


@dataclass
class Traffic:
    ok_per_second: float = 0.0
    errors_per_second: float = 0.0


@dataclass
class Exporter:
    """requests_total{revision, code} counters growing at the rates set per revision."""
    rates: dict[str, Traffic] = field(default_factory=dict)
    _totals: dict[tuple[str, str], float] = field(default_factory=dict)
    _last: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, revision: str, ok_per_second: float, errors_per_second: float = 0.0) -> None:
        with self._lock:
            self._advance()
            self.rates[revision] = Traffic(ok_per_second, errors_per_second)

    def _advance(self) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        for revision, traffic in self.rates.items():
            for code, rate in (("200", traffic.ok_per_second), ("500", traffic.errors_per_second)):
                self._totals[(revision, code)] = self._totals.get((revision, code), 0.0) + rate * elapsed

    def render(self) -> str:
        with self._lock:
            self._advance()
            lines = ["# TYPE requests_total counter"]
            lines += [f'requests_total{{revision="{rev}",code="{code}"}} {value:.3f}'
                      for (rev, code), value in sorted(self._totals.items())]
        return "\n".join(lines) + "\n"


@dataclass
class PrometheusServer:
    url: str
    exporter: Exporter

    def query(self, promql: str) -> dict:
        from urllib.parse import urlencode
        return self.get(f"/api/v1/query?{urlencode({'query': promql})}")

    def get(self, path: str) -> dict:
        import json
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as r:
            return json.loads(r.read())


# What a ServiceMonitor for the model pods sets up: every pod of a
# ModelDeployment in the namespace, scraped on MLServer's metrics port, its
# series labelled with the pod's revision and role (what analysis queries
# select on with {{canary.revision}} and {{stable.revision}}). Debian's
# Prometheus is built without Kubernetes service discovery, so a thread here
# discovers the pods through the API server and writes them to a file_sd file.
MODEL_SERVER_SCRAPE = """\
- job_name: model-servers
  file_sd_configs: [{{files: ['{targets}'], refresh_interval: 1s}}]
"""


@contextmanager
def scraping_model_servers(workdir: Path, core, namespace: str, metrics_port: int = 8082):
    """A Prometheus scraping every second the model pods of `namespace`
    (`core`: a kubernetes CoreV1Api), found anew every second."""
    workdir.mkdir(parents=True, exist_ok=True)
    targets = workdir / "targets.json"
    targets.write_text("[]")
    stop = threading.Event()

    def discover():
        import json
        while not stop.is_set():
            pods = core.list_namespaced_pod(namespace, label_selector="modeldeploy.io/revision").items
            found = [{"targets": [f"{pod.status.pod_ip}:{metrics_port}"],
                      "labels": {"revision": pod.metadata.labels["modeldeploy.io/revision"],
                                 "role": pod.metadata.labels.get("modeldeploy.io/role", ""),
                                 "pod": pod.metadata.name}}
                     for pod in pods if pod.status.pod_ip and pod.metadata.deletion_timestamp is None]
            text = json.dumps(sorted(found, key=lambda t: t["labels"]["pod"]))
            if text != targets.read_text():
                (workdir / "targets.tmp").write_text(text)
                (workdir / "targets.tmp").replace(targets)  # atomic: Prometheus never reads half a file
            stop.wait(1)

    finder = threading.Thread(target=discover, daemon=True)
    finder.start()
    try:
        with _prometheus(workdir, MODEL_SERVER_SCRAPE.format(targets=targets), Exporter()) as server:
            yield server
    finally:
        stop.set()
        finder.join(timeout=10)


@contextmanager
def running_prometheus(workdir: Path):
    exporter = Exporter()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = exporter.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    scrape = f"- job_name: model-servers\n  static_configs: [{{targets: ['127.0.0.1:{http.server_address[1]}']}}]\n"
    try:
        with _prometheus(workdir, scrape, exporter) as server:
            yield server
    finally:
        http.shutdown()


@contextmanager
def _prometheus(workdir: Path, scrape_configs: str, exporter: Exporter):
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is not installed (.ci/run installs it)"
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n" + scrape_configs)
    log = (workdir / "prometheus.log").open("w")
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT)
    server = PrometheusServer(f"http://127.0.0.1:{port}", exporter)
    try:
        wait_until(lambda: urllib.request.urlopen(f"{server.url}/-/ready", timeout=1).status == 200,
                   timeout=30, what="Prometheus to be ready",
                   describe=lambda: (workdir / "prometheus.log").read_text()[-1000:])
        yield server
    finally:
        stop_process(proc)
        log.close()
