"""Session-wide fixtures: one real control plane per test session, a
namespace per test. Tests that do not ask for ``cluster`` never start it.

A cluster that is already up (``make cluster-up``) is reused and left
running; one this session started is stopped at the end unless
MODELDEPLOY_KEEP_CLUSTER=1. If the cluster cannot start, the tests that need
it fail with the reason: none is skipped.

Under pytest-xdist (``-n N``) each worker is a session of its own: its own
namespace prefix and its own operator, so workers never act on each other's
objects. The first worker that needs the cluster starts it under a file
lock (the others wait and reuse it), and the controlling process stops it
once every worker has finished. A few chaos tests hold that lock
exclusively (RUNS_ALONE), so no other worker has a test or an operator
start in flight meanwhile; every other cluster test holds it shared."""
from __future__ import annotations

import os
import re
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest

# Everything in the session (kopf's login, the kubernetes client, kubectl)
# talks to the local control plane. Set before the kubernetes package is
# imported: it reads KUBECONFIG once, at import time.
CLUSTER_DIR = Path(os.environ.get("CLUSTER_DIR", Path(__file__).resolve().parents[1] / ".cluster"))
os.environ["KUBECONFIG"] = str(CLUSTER_DIR / "kubeconfig")

from support.cluster import Cluster, cluster_is_up, control_plane_lock, start_cluster, stop_cluster

# Inside the cluster's directory: which test run started the cluster (hack/cluster.sh down removes it with the rest).
STARTED_BY = CLUSTER_DIR / "started-by-test-run"
RUN_ID = "MODELDEPLOY_TEST_RUN"


def pytest_configure(config):
    # One id for this run, inherited by xdist's workers (spawned later).
    os.environ.setdefault(RUN_ID, uuid.uuid4().hex)


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _keep() -> bool:
    return os.environ.get("MODELDEPLOY_KEEP_CLUSTER") == "1"


# Test modules that must have the control plane to themselves, and why.
RUNS_ALONE = {
    "test_control_plane_restart.py": "restarts etcd and the API server under everyone",
    "test_concurrent_edits.py": "its rounds of kubectl edits must overlap rollouts a few seconds long",
    "test_peering.py": "measures a handover against a bound of a few seconds",
}


def _runs_alone(item) -> bool:
    # Also anything else that restarts etcd or the API server (the one helper for it).
    return item.path.name in RUNS_ALONE or hasattr(getattr(item, "module", None), "restart_components")


def pytest_sessionfinish(session):
    # The xdist controller runs no test; it stops a cluster one of its
    # workers started, after all of them are done.
    config = session.config
    if _is_worker(config) or config.pluginmanager.getplugin("dsession") is None or _keep():
        return
    try:
        started_by = STARTED_BY.read_text()
    except OSError:
        return
    if started_by == os.environ[RUN_ID]:
        stop_cluster(CLUSTER_DIR)


# The longest modules, which set the suite's length when they start last:
# real models on the real node, `make demo`, and the two halves of the
# property test (CPU-bound, minutes each).
LONG_FIRST = ("/realnode/", "/e2e/test_demo.py", "/unit/test_rollout_safety")


def _order(item) -> int:
    path = str(item.path)
    if "/chaos/" in path:
        return 0  # they need the cluster to themselves: early, while the others queue
    return 1 if any(part in path for part in LONG_FIRST) else 2


def pytest_collection_modifyitems(items):
    # Every test that touches the control plane carries the `cluster` marker,
    # so `-m "not cluster"` gives the pure suite.
    for item in items:
        if "cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.cluster)
    # xdist (--dist loadfile --no-loadscope-reorder) hands modules out in this
    # order: the chaos modules, then the long ones, then the many short ones
    # that fill the end. A stable sort keeps each module's own test order.
    items.sort(key=_order)


@pytest.fixture(scope="session")
def cluster(request) -> Cluster:
    cluster_dir = CLUSTER_DIR
    started = False
    if not cluster_is_up(cluster_dir):
        # xdist workers: one starts it, the others wait and reuse it. (Not
        # taken when it is up: sessions sharing a cluster hold the lock
        # shared through every test, so an exclusive one would wait for a gap.)
        with control_plane_lock(exclusive=True):
            if not cluster_is_up(cluster_dir):
                start_cluster(cluster_dir)
                STARTED_BY.write_text(os.environ[RUN_ID])
                started = True
    the_cluster = Cluster(dir=cluster_dir, started_here=started)
    yield the_cluster
    # A worker leaves it to the controller (pytest_sessionfinish): others may still use it.
    if started and not _is_worker(request.config) and not _keep():
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


@pytest.fixture
def own_namespace(cluster, request) -> str:
    """A namespace outside the session prefix, for one test: the session's
    in-process operator never acts there, only the operator process (or pod)
    the test runs. Named after the test's folder and name; deleted without
    waiting afterwards."""
    from support.operator import install_crd

    install_crd(cluster)  # as the session operator would; these tests may run alone
    stem = request.node.name.replace("_", "-")[5:25].strip("-")
    name = f"{request.path.parent.name}-{stem}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(autouse=True)
def _hold_the_control_plane(request):
    """Every cluster test runs under the control-plane lock: shared, or
    exclusive for RUNS_ALONE. Session fixtures are set up before this one
    (pytest orders fixtures by scope)."""
    if request.node.get_closest_marker("cluster") is None:  # set for every user of `cluster`, above
        yield
        return
    with control_plane_lock(exclusive=_runs_alone(request.node)):
        yield


@pytest.fixture(scope="session")
def operator(cluster):
    """One operator for the whole session (per xdist worker), watching this
    session's namespaces."""
    from support.operator import running_operator

    with ExitStack() as stack:
        with control_plane_lock(exclusive=False):  # not while another worker restarts the API server
            op = stack.enter_context(running_operator(cluster))
        yield op


@pytest.fixture
def prometheus(tmp_path):
    """A real Prometheus for one test, scraping an exporter the test drives."""
    from support.prometheus import running_prometheus

    with running_prometheus(tmp_path) as server:
        yield server


@pytest.fixture(scope="session")
def model_store(tmp_path_factory):
    """A real S3-compatible model store (moto_server, IAM on) for this
    session (per xdist worker): one bucket, one access key. Tests keep to key
    prefixes of their own. See support/model_store.py."""
    from support.model_store import running_model_store

    with running_model_store(tmp_path_factory.mktemp("model-store")) as store:
        yield store
