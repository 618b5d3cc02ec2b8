"""`modeldeploy run --shard I/N` (reconcile/shards.py): which ModelDeployments
a replica reconciles, and what its cache keeps of the others'."""
import os
import subprocess
import sys
from collections import Counter

import pytest

from modeldeploy.cli.main import main
from modeldeploy.kube.cache import Cache
from modeldeploy.reconcile.shards import Shard, parse_shard, shard_of
from test_cache import child, model, pod
from test_plan import Loop

NAMES = [(f"team-{t}", f"model-{i}") for t in range(10) for i in range(300)]


def test_every_model_deployment_belongs_to_exactly_one_shard():
    for n in (1, 2, 3, 7):
        shards = [Shard(i, n) for i in range(n)]
        for key in NAMES[:500]:
            assert sum(s.owns(key) for s in shards) == 1


@pytest.mark.parametrize("n", [2, 3, 5, 10])
def test_the_split_is_close_to_even(n):
    counts = Counter(shard_of(ns, name, n) for ns, name in NAMES)
    expected = len(NAMES) / n
    assert set(counts) == set(range(n))
    # As a fair random split would: each count within 4 standard deviations
    # of N/n (3,000 names in 3 shards: 1,000 +- 103; in 10: 300 +- 66).
    spread = 4 * (len(NAMES) * (1 / n) * (1 - 1 / n)) ** 0.5
    assert all(abs(c - expected) < spread for c in counts.values()), counts


def test_the_shard_depends_on_namespace_and_name_not_on_either_alone():
    assert len({shard_of(f"ns-{i}", "fraud", 8) for i in range(100)}) == 8
    assert len({shard_of("ml", f"fraud-{i}", 8) for i in range(100)}) == 8


def test_the_same_answer_in_every_process():
    # Python's hash() of a str differs per process (PYTHONHASHSEED); ours must not.
    code = ("from modeldeploy.reconcile.shards import shard_of; "
            "print(','.join(str(shard_of(f'ns{i}', f'm{i}', 7)) for i in range(200)))")
    here = ",".join(str(shard_of(f"ns{i}", f"m{i}", 7)) for i in range(200))
    for seed in ("1", "2", "random"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed,
                                  "PYTHONPATH": os.pathsep.join(sys.path)}).stdout.strip()
        assert out == here


def test_parse_shard_accepts_i_of_n():
    assert parse_shard("0/3") == Shard(0, 3)
    assert parse_shard(" 2/3 ") == Shard(2, 3)
    assert parse_shard("0/1") == Shard(0, 1) and str(parse_shard("1/3")) == "1/3"


@pytest.mark.parametrize("text, says", [
    ("3/3", "shard index 3 out of range for 3 shards: use 0 to 2"),
    ("5/2", "out of range for 2 shards"),
    ("0/0", "the number of shards must be at least 1"),
    ("-1/3", "expected I/N"),
    ("1", "expected I/N"),
    ("a/b", "expected I/N"),
    ("", "expected I/N"),
])
def test_parse_shard_refuses_what_is_not_i_of_n(text, says):
    with pytest.raises(ValueError, match=says):
        parse_shard(text)


def test_run_refuses_a_bad_shard_with_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("MODELDEPLOY_SHARD", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["run", "--shard", "3/3"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --shard: shard index 3 out of range for 3 shards: use 0 to 2" in err
    assert "Traceback" not in err


def test_run_refuses_a_bad_shard_from_the_environment_too(capsys, monkeypatch):
    monkeypatch.setenv("MODELDEPLOY_SHARD", "1/zero")
    with pytest.raises(SystemExit) as exited:
        main(["run"])
    assert exited.value.code == 2
    assert "argument --shard: expected I/N" in capsys.readouterr().err


# -- the cache of a shard ---------------------------------------------------------------


def _split(mine: str, theirs: str) -> Shard:
    """A shard that owns ml/`mine` and not ml/`theirs`."""
    for n in range(2, 20):
        shard = Shard(shard_of("ml", mine, n), n)
        if not shard.owns(("ml", theirs)):
            return shard
    raise AssertionError("no split found")


def test_a_shard_caches_only_its_own_models_and_pods():
    shard = _split("fraud", "churn")
    cache = Cache(owns=shard.owns)
    cache.put_model(model("fraud"))
    cache.put_model(model("churn"))
    assert list(cache.models) == [("ml", "fraud")]
    assert cache.put_pod(pod("fraud-stable-a", owner="fraud")) == ("ml", "fraud")
    assert cache.put_pod(pod("churn-stable-a", owner="churn")) is None
    assert list(cache.pods) == [("ml", "fraud")]


def test_another_shards_children_are_kept_by_name_and_controller_only():
    shard = _split("fraud", "churn")
    cache = Cache(owns=shard.owns)
    cache.put_child(child(kind="Deployment", name="fraud-stable", owner="fraud"))
    theirs = child(kind="Deployment", name="churn-stable", owner="churn", status={"readyReplicas": 2})
    assert cache.put_child(theirs) == ("ml", "churn")
    assert list(cache.children) == [("ml", "fraud")]
    stub = cache.neighbours_of("ml")[("Deployment", "churn-stable")]
    assert stub["metadata"]["ownerReferences"] == theirs["metadata"]["ownerReferences"]
    assert "spec" not in stub and "status" not in stub
    assert cache.neighbours_of("ml")[("Deployment", "fraud-stable")]["spec"] == {"x": "1"}
    cache.drop_child(theirs)
    assert ("Deployment", "churn-stable") not in cache.neighbours_of("ml")


def test_a_name_another_shards_model_holds_is_still_a_name_conflict():
    # Service x-canary is x's canary role Service; ModelDeployment x-canary
    # would want the same name. x is another shard's: the stub still tells.
    shard = _split("x-canary", "x")
    first = Loop(name="x", uid="uid-x")
    first.run()
    cache = Cache(owns=shard.owns)
    for body in first.children.values():
        cache.put_child({**body, "metadata": {**body["metadata"], "resourceVersion": "1"}})
    later = Loop(name="x-canary", uid="uid-x-canary")
    later.neighbours = dict(cache.neighbours_of("ml"))
    step = later.run()
    assert step.apply == () and later.condition("Stalled") == ("True", "NameConflict")
    assert "Service x-canary already exists and is controlled by ModelDeployment x" in later.status["message"]
