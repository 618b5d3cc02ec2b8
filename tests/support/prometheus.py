"""A real Prometheus server (Debian's `prometheus` package) scraping a small
exporter the test controls: per-revision request and error rates, so a
canary's analysis sees the numbers the test chooses."""
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
        import json
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urlencode({'query': promql})}", timeout=5) as r:
            return json.loads(r.read())


@contextmanager
def running_prometheus(workdir: Path):
    binary = shutil.which("prometheus")
    assert binary, "Debian's prometheus package is not installed (.ci/run installs it)"
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
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"- job_name: model-servers\n  static_configs: [{{targets: ['127.0.0.1:{http.server_address[1]}']}}]\n")
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
        http.shutdown()
        log.close()
