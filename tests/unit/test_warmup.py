"""kube/warmup.py: where the cache is filled from before the first pass, for
each way `modeldeploy run --namespace` can be given (kopf's own patterns)."""
import asyncio

import pytest
from kopf._cogs.structs.references import match_namespace

from modeldeploy.kube.warmup import matches, scopes

EXISTING = ("default", "ml", "team-a", "team-b", "team-bb", "myapp-pr-123", "myapp-pr-456", "otherapp-pr-123")


class Namespaces:
    """A kube whose only list is of namespaces."""

    def __init__(self):
        self.listed = 0

    async def list_all(self, res, namespace, selector=None):
        assert res.kind == "Namespace" and namespace is None
        self.listed += 1
        return [{"metadata": {"name": n}} for n in EXISTING]


@pytest.mark.parametrize("patterns, expected, namespace_lists", [
    ([], [None], 0),                                  # cluster-wide: one list per kind
    (["ml", "fraud", "ml"], ["ml", "fraud"], 0),      # names: as given (even not yet there), once each
    (["team-*"], ["team-a", "team-b", "team-bb"], 1),
    (["team-*,!team-b?"], ["team-a", "team-b"], 1),
    (["ml", "team-?"], ["ml", "team-a", "team-b"], 1),
    (["!team-*, !*-pr-*, *pr-123"], ["default", "ml", "myapp-pr-123", "otherapp-pr-123"], 1),
])
def test_scopes(patterns, expected, namespace_lists):
    kube = Namespaces()
    assert asyncio.run(scopes(kube, patterns)) == expected
    assert kube.listed == namespace_lists


@pytest.mark.parametrize("pattern", ["myapp-*, !*-pr-*, *pr-123", "!*-pr-*, *pr-123", "team-?", "ml", "!ml",
                                     "team-*,!team-b*,team-bb"])
def test_the_rule_is_kopfs(pattern):
    for namespace in EXISTING:
        assert matches(namespace, [pattern]) == match_namespace(namespace, pattern), namespace
