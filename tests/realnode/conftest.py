"""Tests on the real data plane: a real MLServer on real-0 (the real node,
hack/real-node.sh), loading a model the test trained and uploaded to the
model store (support/model_store.py), answering real inference requests.

Every test here carries the `realnode` marker (`pytest -m realnode`). They
need the serving images (hack/images/build.sh: a no-op on a warm cache, about
5 min the first time) imported into real-0's containerd: done once per
session, for what the node does not hold yet. test_gateway_split.py also
needs Traefik (hack/build-traefik.sh: cached, about 8 min the first time).
Each test runs its own
`modeldeploy run --runtimes FILE` process, with the runtime table that
differs from the shipped one only in image references, in a namespace
outside the session prefix (the session's in-process operator, with the
shipped table, never acts there). If the node or the images are missing the
tests fail, naming what is missing; none is skipped."""
from __future__ import annotations

import sys
import time

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/realnode/" in str(item.fspath):
            item.add_marker(pytest.mark.realnode)


@pytest.fixture(scope="session")
def serving_images(cluster, request):
    """The MLServer and storage initializer images, built (or found in the
    cache) and imported into real-0; a support.real_node.ServingImages."""
    from support import real_node

    real_node.require(cluster)
    show = real_node.progress_display(request)
    images = real_node.build_serving_images(show_progress=show)
    started = time.monotonic()
    imported = real_node.import_images(cluster, images)
    if imported:
        with show():
            print(f"\nreal node: imported {', '.join(f'{ref} ({s:.0f} s)' for ref, s in imported.items())} "
                  f"into {real_node.NAME} in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return images


@pytest.fixture
def real_namespace(own_namespace):
    """A namespace outside the session prefix, for one test (tests/conftest.py)."""
    return own_namespace


@pytest.fixture
def real_operator(cluster, real_namespace, serving_images, tmp_path):
    """`modeldeploy run --runtimes <the local images' table>`, watching only
    real_namespace."""
    from support.process import OperatorProcess

    with OperatorProcess(cluster, real_namespace, tmp_path / "operator.log",
                         extra_args=("--runtimes", str(serving_images.runtimes))) as op:
        yield op
