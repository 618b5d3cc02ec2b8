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
