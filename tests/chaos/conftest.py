"""Chaos tests: processes killed and restarted under the operator.

Each test runs its own `modeldeploy run` process(es) in a namespace outside
the session prefix, so the session's in-process operator never acts there and
the test can kill what it started. Tests that restart the API server or etcd
do it with `hack/cluster.sh restart`: run them on a control plane of your own
(CLUSTER_DIR=/tmp/somewhere) when others share yours."""
from __future__ import annotations


import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)


# own_namespace: tests/conftest.py
