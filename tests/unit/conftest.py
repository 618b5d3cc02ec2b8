"""Fixtures for the pure unit tests (no cluster). Cluster fixtures live in tests/conftest.py."""

import copy

import pytest

from modeldeploy.runtimes import load_runtime_table

MINIMAL_SPEC = {"model": {"uri": "s3://models/fraud/v7", "version": "v7", "format": "sklearn"}}


@pytest.fixture(scope="session")
def runtime_table():
    return load_runtime_table()


@pytest.fixture(scope="session")
def known_formats(runtime_table):
    return runtime_table.known_formats


@pytest.fixture
def minimal_spec():
    """A fresh copy of the smallest valid spec, safe to mutate."""
    return copy.deepcopy(MINIMAL_SPEC)


@pytest.fixture(autouse=True)
def _no_in_process_operator_settings(monkeypatch):
    """A unit test builds its own OperatorSettings from a clean environment.
    An integration test's in-process operator (tests/support/operator.py)
    puts the controller's settings in os.environ for the rest of the session,
    and in one xdist worker the unit tests that follow would inherit them:
    its namespaces would make every Controller built here drop the models of
    namespace "ml" (seen in CI: 20 controller tests failed that passed alone)."""
    for name in ("MODELDEPLOY_NAMESPACES", "MODELDEPLOY_RESYNC_SECONDS", "MODELDEPLOY_SHARD"):
        monkeypatch.delenv(name, raising=False)
