"""Session-wide fixtures: one real control plane per test session, a
namespace per test. Tests that do not ask for ``cluster`` never start it.

A cluster that is already up (``make cluster-up``) is reused and left
running; one this session started is stopped at the end unless
MODELDEPLOY_KEEP_CLUSTER=1. If the cluster cannot start, the tests that need
it fail with the reason: none is skipped."""
from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

# Everything in the session (kopf's login, the kubernetes client, kubectl)
# talks to the local control plane. Set before the kubernetes package is
# imported: it reads KUBECONFIG once, at import time.
CLUSTER_DIR = Path(os.environ.get("CLUSTER_DIR", Path(__file__).resolve().parents[1] / ".cluster"))
os.environ["KUBECONFIG"] = str(CLUSTER_DIR / "kubeconfig")

from support.cluster import Cluster, cluster_is_up, start_cluster, stop_cluster


def pytest_collection_modifyitems(items):
    # Every test that touches the control plane carries the `cluster` marker,
    # so `-m "not cluster"` gives the pure suite.
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    cluster_dir = CLUSTER_DIR
    started = False
    if not cluster_is_up(cluster_dir):
        start_cluster(cluster_dir)
        started = True
    the_cluster = Cluster(dir=cluster_dir, started_here=started)
    yield the_cluster
    if started and os.environ.get("MODELDEPLOY_KEEP_CLUSTER") != "1":
        stop_cluster(cluster_dir)


def _namespace_name(node_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", node_name.lower()).strip("-")[:38].strip("-")
    from support.operator import SESSION_PREFIX
    return f"{SESSION_PREFIX}-{stem}-{uuid.uuid4().hex[:5]}"


@pytest.fixture
def namespace(cluster: Cluster, request) -> str:
    """A fresh namespace for one test, deleted afterwards (without waiting:
    the garbage collector finishes it in the background)."""
    name = _namespace_name(request.node.name)
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def operator(cluster):
    """One operator for the whole session, watching all namespaces."""
    from support.operator import running_operator

    with running_operator(cluster) as op:
        yield op


@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus for one test, scraping an exporter the test drives."""
    from support.prometheus import running_prometheus

    with running_prometheus(tmp_path) as server:
        yield server
