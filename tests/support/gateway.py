"""Traefik as a real Gateway API data plane (tests/realnode/test_gateway_split.py).

Traefik runs on the host as a plain process, built from the Go module proxy
by hack/build-traefik.sh (cached outside the clone; about 8 minutes the first
time, with progress). Its Kubernetes Gateway provider reads the Gateway and
the HTTPRoutes of one namespace through the API server and sends each
request straight to a ready pod IP on real-0 (from the route's Services'
EndpointSlices), picked by the route's backendRef weights. Its entry point
listens on a free loopback port; the Gateway's listener names the same port,
which is how Traefik matches a listener to an entry point."""
from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.cluster import REPO
from support.operator import free_port
from support.process import stop_process
from support.waiting import wait_until

CONTROLLER = "traefik.io/gateway-controller"
GATEWAY_CLASS = "traefik"


def build_traefik(show_progress) -> Path:
    """hack/build-traefik.sh: the cached binary, or a build with its progress on screen."""
    with show_progress():
        proc = subprocess.run([str(REPO / "hack" / "build-traefik.sh")], stdout=subprocess.PIPE,
                              stderr=sys.stderr, text=True)
    assert proc.returncode == 0, "hack/build-traefik.sh failed (its output is above)"
    return Path(proc.stdout.strip())


@dataclass
class Gateway:
    """A Gateway `name` in `namespace`, served by a Traefik on 127.0.0.1:`port`."""
    namespace: str
    name: str
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def parent_ref(self) -> dict:
        return {"name": self.name}

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def gateway_manifests(namespace: str, name: str, port: int) -> list[dict]:
    return [
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
         "metadata": {"name": GATEWAY_CLASS}, "spec": {"controllerName": CONTROLLER}},
        {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
         "metadata": {"name": name, "namespace": namespace},
         "spec": {"gatewayClassName": GATEWAY_CLASS,
                  "listeners": [{"name": "http", "protocol": "HTTP", "port": port,
                                 "allowedRoutes": {"namespaces": {"from": "Same"}}}]}},
    ]


def _condition(conditions: list[dict] | None, kind: str) -> str | None:
    for condition in conditions or []:
        if condition.get("type") == kind:
            return condition.get("status")
    return None


@contextmanager
def traefik_gateway(cluster, namespace: str, workdir: Path, show_progress, name: str = "gateway"):
    """A Gateway in `namespace` and a Traefik serving it (watching only that
    namespace), Programmed before this yields a Gateway."""
    binary = build_traefik(show_progress)
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    for doc in gateway_manifests(namespace, name, port):
        cluster.apply(namespace, doc)
    gateway = Gateway(namespace, name, port, workdir / "traefik.log")
    out = gateway.log.open("w")
    proc = subprocess.Popen(
        [str(binary), "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
         f"--entryPoints.web.address=127.0.0.1:{port}", "--providers.kubernetesGateway=true",
         f"--providers.kubernetesGateway.namespaces={namespace}", "--log.level=INFO", "--log.noColor=true"],
        env=cluster.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    try:
        def programmed():
            doc = cluster.custom.get_namespaced_custom_object(
                "gateway.networking.k8s.io", "v1", namespace, "gateways", name)
            return proc.poll() is None and _condition((doc.get("status") or {}).get("conditions"), "Programmed") == "True"

        wait_until(programmed, timeout=60, what=f"Traefik to program the Gateway {namespace}/{name}",
                   describe=lambda: f"exit code {proc.poll()}; Traefik's log:\n{gateway.log_tail()}")
        yield gateway
    finally:
        stop_process(proc, grace=15)


def route_accepted(cluster, namespace: str, name: str) -> bool:
    """The HTTPRoute `name` is Accepted by its Gateway with its refs resolved."""
    try:
        route = cluster.custom.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", name)
    except Exception:  # noqa: BLE001 - not created yet
        return False
    parents = (route.get("status") or {}).get("parents") or []
    return bool(parents) and all(_condition(p.get("conditions"), "Accepted") == "True"
                                 and _condition(p.get("conditions"), "ResolvedRefs") == "True" for p in parents)


def status_of(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except Exception as exc:  # noqa: BLE001 - reported
        return repr(exc)
