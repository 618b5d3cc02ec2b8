"""Fuzzed ModelDeployments on the real API server: wrong types, missing
fields, huge values, unicode, bad URIs, bad steps, bad durations, conflicting
replicas/autoscaling, bad labels and selectors. Each document is either
refused by the schema/CEL with a message, or accepted and then handled:
Ready, or Stalled with reason InvalidSpec and no child written. Meanwhile the
operator never crashes and never fails a reconcile, and a healthy sentinel
ModelDeployment in the same namespace stays Ready, untouched, and still
reacts to a change at the end.

Documents are drawn in batches (one hypothesis example = one batch applied
at once). FUZZ_SEED=<n> replays a run; the seed is printed."""
from __future__ import annotations

import os
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from support.chaos import PLURAL, reason
from support.models import API, apply_md, edited, get_md, is_true, model_deployment, wait_ready
from support.process import MeteredOperator
from support.waiting import wait_until

BATCH = 8
BATCHES = int(os.environ.get("FUZZ_BATCHES", 10))
FUZZ_SEED = int(os.environ.get("FUZZ_SEED", time.time_ns() % 2**32))
CHILD_SELECTOR = "modeldeploy.io/name={}"

# -- the generator --------------------------------------------------------------

text = st.text(max_size=20)
weird = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                  text, st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                                                  max_size=2), st.none())
huge = st.sampled_from(["x" * 5000, "é" * 300, "🚀" * 200])


FIELDS = ("uri", "version", "format", "missing", "scale", "quantities", "steps", "deadline", "labels",
          "selector", "env", "port", "shape", "unknown")


def either(good, bad):
    """(good, bad) strategies for one field; `specs` picks which fields go bad."""
    return good, bad


uris = either(st.sampled_from(["s3://models/fraud/v1", "gs://b/m", "https://example.com/m.onnx",
                               "hf://org/model"]),  # (a pvc:// claim would have to exist)
              st.one_of(st.sampled_from(["models/fraud", "ftp://x/y", "", "s3://", "pvc://Bad_Claim/x",
                                         "s3://модели/🚀", "pvc:///nothing"]), huge, weird))
versions = either(st.sampled_from(["v1", "2.0.1", "версия-7", "🚀", "x" * 128]),
                  st.one_of(st.just(""), st.just("v" * 129), huge, weird))
formats = either(st.sampled_from(["sklearn", "onnx", "huggingface"]),
                 st.one_of(st.sampled_from(["cobol", "Not_A_Label", "sk learn"]), weird))
replicas = either(st.integers(0, 2), st.one_of(st.integers(1001, 10**15), st.integers(-10**6, -1), weird))
quantities = either(st.sampled_from(["100m", "1", "256Mi", "0.5"]),
                    st.one_of(st.sampled_from(["lots", "-1", "1.5.5", "1e99999"]), weird))
durations = either(st.sampled_from(["2s", "1m", "1h30m"]),
                   st.one_of(st.sampled_from(["5 minutes", "-1s", "1d", "0s", "999999h", "s", ""]), weird))
good_step = st.one_of(st.builds(lambda w: {"setWeight": w}, st.integers(0, 100)),
                      st.builds(lambda d: {"pause": {"duration": d}}, durations[0]))
bad_step = st.one_of(st.just({}), st.builds(lambda w: {"setWeight": w}, st.one_of(st.integers(101, 10**9),
                                                                                 st.integers(-100, -1), weird)),
                     st.just({"setWeight": 10, "pause": {}}), st.builds(lambda d: {"pause": {"duration": d}},
                                                                         durations[1]), weird)
steps = either(st.lists(good_step, max_size=3),
               st.one_of(st.builds(lambda a, b: a + [b], st.lists(good_step, max_size=2), bad_step),
                         st.lists(good_step, min_size=21, max_size=21)))
label_keys = either(st.sampled_from(["team", "example.com/tier"]),
                    st.sampled_from(["bad key!", "-leading", "a/b/c", "x" * 70, "ünïcode", ""]))
label_values = either(st.sampled_from(["risk", "a.b-c_d", ""]), st.sampled_from(["spaces here", "x" * 64, "🚀"]))
env_names = either(st.sampled_from(["LOG_LEVEL", "A_B"]), st.sampled_from(["MODELDEPLOY_DIR", "", "1BAD=", "ü"]))
ports = either(st.integers(1, 65535), st.one_of(st.integers(65536, 10**9), st.integers(-5, 0), weird))
deadlines = either(st.integers(10, 600), st.one_of(st.integers(-5, 9), st.integers(86401, 10**12), weird))


@st.composite
def specs(draw) -> dict:
    """A ModelDeployment spec with zero, one or two faults in chosen fields
    (often none: those must come out Ready)."""
    bad = draw(st.sets(st.sampled_from(FIELDS), max_size=draw(st.sampled_from([0, 1, 1, 2]))))
    pick = lambda field, pair: draw(pair[1] if field in bad else pair[0])  # noqa: E731
    spec: dict = {"model": {"uri": pick("uri", uris), "version": pick("version", versions),
                            "format": pick("format", formats)}}
    if "missing" in bad:
        del spec["model"][draw(st.sampled_from(["uri", "version", "format"]))]
    if "scale" in bad:
        lo, hi = draw(st.integers(-1, 4)), draw(st.integers(0, 3))
        spec.update(draw(st.sampled_from([
            {"replicas": draw(replicas[1])},
            {"replicas": 1, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}},   # both
            {"autoscaling": {"minReplicas": lo, "maxReplicas": hi}},                # no cpu request, maybe min > max
        ])))
    elif draw(st.booleans()):
        spec["replicas"] = draw(replicas[0])
    else:
        spec["autoscaling"] = {"minReplicas": 1, "maxReplicas": 2}
        spec["resources"] = {"requests": {"cpu": "100m"}}
    if "quantities" in bad or draw(st.booleans()):
        spec.setdefault("resources", {}).setdefault("requests", {})["memory"] = pick("quantities", quantities)
    if "steps" in bad or draw(st.booleans()):
        spec["rollout"] = {"steps": pick("steps", steps)}
    if "deadline" in bad:
        spec.setdefault("rollout", {})["progressDeadlineSeconds"] = pick("deadline", deadlines)
    if "labels" in bad or draw(st.booleans()):
        spec["podMetadata"] = {"labels": {pick("labels", label_keys): pick("labels", label_values)}}
    if "selector" in bad or draw(st.booleans()):
        # The good selector is one the simulated nodes match.
        spec["nodeSelector"] = ({draw(label_keys[1]): draw(label_values[1])} if "selector" in bad
                                else {"type": "kwok"})
    if "env" in bad or draw(st.booleans()):
        spec["runtime"] = {"env": [{"name": pick("env", env_names), "value": draw(st.sampled_from(["info", "é" * 50]))}]}
    if "port" in bad:
        spec.setdefault("runtime", {})["port"] = pick("port", ports)
    if "shape" in bad:
        spec = draw(st.sampled_from([{}, {"model": None}, {"model": "s3://m/v1"}, {"model": {"uri": 7}}]))
    if "unknown" in bad:
        spec["surprise"] = draw(weird)  # unknown field: pruned by the structural schema
    return spec


# "" means a fresh valid name; sometimes one the API server must refuse.
names = st.one_of(st.just(""), st.just(""), st.just(""), st.just(""), st.sampled_from(["-" + "n" * 44, "n" * 46, "Upper"]))
documents = st.tuples(names, specs())

# -- the test -------------------------------------------------------------------

OUTCOMES: Counter[str] = Counter()


def _create(cluster, ns, name: str, spec: dict) -> str | None:
    """None when accepted, else the API server's message."""
    body = {"apiVersion": "/".join(API), "kind": "ModelDeployment", "metadata": {"name": name}, "spec": spec}
    try:
        cluster.custom.create_namespaced_custom_object(*API, ns, PLURAL, body)
        return None
    except ApiException as exc:
        assert exc.status in (400, 422), f"{exc.status} for {body!r}: {exc.body}"
        return exc.body or exc.reason


def _handled(md: dict) -> str | None:
    st_ = md.get("status", {})
    if st_.get("observedGeneration") != md["metadata"]["generation"]:
        return None
    if reason(md, "Stalled") == "InvalidSpec":
        return "InvalidSpec"
    if is_true(md, "Ready"):
        return "Ready"
    if reason(md, "Ready") in ("InsufficientCapacity", "Unschedulable"):
        # A valid spec no node can hold (a fuzzed memory request of petabytes):
        # said in the status at once, as issue 11 asks; nothing else to wait for.
        return "NoRoom"
    return None


@pytest.fixture
def fuzz_bed(cluster, own_namespace, tmp_path):
    ns = own_namespace
    op = MeteredOperator(cluster, ns, tmp_path / "operator.log").start()
    sentinel = model_deployment("sentinel", replicas=1)
    apply_md(cluster, ns, sentinel)
    wait_ready(cluster, ns, "sentinel")
    generation = cluster.apps.read_namespaced_deployment("sentinel-stable", ns).metadata.generation
    yield cluster, ns, op, sentinel, generation
    op.kill()


def test_fuzzed_model_deployments(fuzz_bed):
    cluster, ns, op, sentinel, generation = fuzz_bed
    print(f"\nfuzz seed: {FUZZ_SEED} (FUZZ_SEED={FUZZ_SEED} replays it)")
    counter = iter(range(10**6))
    OUTCOMES.clear()

    @seed(FUZZ_SEED)
    # No shrinking: each step would wait on the cluster again; a failure
    # already names the documents of its batch that were not handled.
    @settings(max_examples=BATCHES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(st.lists(documents, min_size=BATCH, max_size=BATCH))
    def batch(docs):
        accepted: dict[str, dict] = {}
        for prefix, spec in docs:
            name = prefix or f"fz-{next(counter)}"
            refused = _create(cluster, ns, name, spec)
            if refused is not None:
                assert "spec" in refused or "metadata" in refused or "name" in refused, refused  # a message
                OUTCOMES["refused"] += 1
            else:
                accepted[name] = spec
        outcome: dict[str, str] = {}

        def all_handled():
            for name in set(accepted) - set(outcome):
                got = _handled(get_md(cluster, ns, name))
                if got:
                    outcome[name] = got
            return len(outcome) == len(accepted)

        wait_until(all_handled, timeout=30, what="every accepted document Ready, InvalidSpec or reported without room",
                   describe=lambda: {n: (accepted[n], get_md(cluster, ns, n).get("status"))
                                     for n in set(accepted) - set(outcome)})
        for name, got in outcome.items():
            OUTCOMES[got] += 1
            if got == "InvalidSpec":
                made = cluster.kubectl("get", "-n", ns, "deployments,services,poddisruptionbudgets,httproutes",
                                       "-l", CHILD_SELECTOR.format(name), "-o", "name").stdout.split()
                assert not made, f"children written for an invalid spec {accepted[name]!r}: {made}"
        # The neighbour was never disturbed, and the operator is alive.
        md = get_md(cluster, ns, "sentinel")
        assert is_true(md, "Ready"), md.get("status")
        assert cluster.apps.read_namespaced_deployment("sentinel-stable", ns).metadata.generation == generation
        assert op.alive, op.log_text()[-2000:]
        for name in accepted:
            cluster.custom.delete_namespaced_custom_object(*API, ns, PLURAL, name)

    try:
        batch()
    finally:
        tried = sum(OUTCOMES.values())
        print(f"fuzz: {tried} documents tried: refused {OUTCOMES['refused']}, Ready {OUTCOMES['Ready']}, "
              f"InvalidSpec {OUTCOMES['InvalidSpec']}")

    # The queue still works: the sentinel reacts to a change at the end.
    apply_md(cluster, ns, edited(sentinel, replicas=2))
    wait_until(lambda: cluster.apps.read_namespaced_deployment("sentinel-stable", ns).spec.replicas == 2,
               timeout=30, what="the sentinel to scale to 2")
    wait_ready(cluster, ns, "sentinel")
    failures = [line for line in op.log_text().splitlines() if "reconcile of" in line and "failed" in line]
    assert not failures, failures[:5]
    assert OUTCOMES["refused"] and OUTCOMES["Ready"] + OUTCOMES["InvalidSpec"], OUTCOMES
