"""spec.model.cache: what the spec accepts, what the pods get (the claim in
the storage initializer only, restricted still), the revision (unchanged for
models without a cache), and modeldeploy_model_cache_total read off the
initializer's termination message, one count per pod. The initializer's own
side: test_model_cache_initializer.py."""

import pytest

from modeldeploy import metrics
from modeldeploy.api import InvalidSpec, parse_spec
from modeldeploy.builders import compute_revision
from modeldeploy.builders.pod import CACHE_DIR_ENV, CACHE_MOUNT_PATH, CACHE_VOLUME
from modeldeploy.builders.security import restricted_violations
from modeldeploy.reconcile.plan import steady_children
from modeldeploy.status.observed import model_cache_result

CACHE = {"claimName": "models-cache"}


def stable_pod(raw, table):
    children = steady_children(name="fraud", namespace="ml", uid="uid-1", spec=raw, table=table)
    [deployment] = [c for c in children if c["kind"] == "Deployment" and c["metadata"]["name"] == "fraud-stable"]
    return deployment["spec"]["template"]["spec"]


def problems_of(raw, known_formats):
    with pytest.raises(InvalidSpec) as caught:
        parse_spec(raw, known_formats=known_formats)
    return caught.value.problems


def test_the_claim_reaches_the_storage_initializer_only(minimal_spec, runtime_table):
    minimal_spec["model"]["cache"] = CACHE
    pod = stable_pod(minimal_spec, runtime_table)
    [initializer], [server] = pod["initContainers"], pod["containers"]
    assert {"name": CACHE_VOLUME, "persistentVolumeClaim": {"claimName": "models-cache"}} in pod["volumes"]
    assert {"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT_PATH} in initializer["volumeMounts"]
    assert {"name": CACHE_DIR_ENV, "value": CACHE_MOUNT_PATH} in initializer["env"]
    # The server reads its own copy in its own volume, read-only, as without a cache.
    assert CACHE_VOLUME not in repr(server) and CACHE_MOUNT_PATH not in repr(server)
    assert [m["readOnly"] for m in server["volumeMounts"]] == [True]
    assert restricted_violations(pod) == []


def test_without_a_cache_the_pods_and_their_revision_are_as_before(minimal_spec, runtime_table, known_formats):
    before = stable_pod(minimal_spec, runtime_table)
    assert CACHE_VOLUME not in repr(before) and "env" not in before["initContainers"][0]
    spec = parse_spec(minimal_spec, known_formats=known_formats)
    assert "cache" not in spec.model_dump(mode="json", by_alias=True)["model"]  # the revision hashes this dump
    plain = compute_revision(spec, runtime_table)
    minimal_spec["model"]["cache"] = CACHE
    cached = compute_revision(parse_spec(minimal_spec, known_formats=known_formats), runtime_table)
    minimal_spec["model"]["cache"] = {"claimName": "other-cache"}
    other = compute_revision(parse_spec(minimal_spec, known_formats=known_formats), runtime_table)
    assert len({plain, cached, other}) == 3


@pytest.mark.parametrize("cache, fragment", [
    ({"claimName": "Models_Cache"}, "spec.model.cache.claimName: 'Models_Cache' is not a DNS-1123 subdomain"),
    ({"claimName": ""}, "spec.model.cache.claimName: "),
    ({}, "spec.model.cache.claimName: required"),
    ({"claim": "models-cache"}, "spec.model.cache.claim: unknown field"),
])
def test_a_cache_must_name_a_claim(minimal_spec, known_formats, cache, fragment):
    minimal_spec["model"]["cache"] = cache
    assert any(problem.startswith(fragment) for problem in problems_of(minimal_spec, known_formats))


def test_a_mounted_model_has_nothing_to_cache(minimal_spec, known_formats):
    minimal_spec["model"].update(uri="pvc://model-store/fraud", cache=CACHE)
    assert problems_of(minimal_spec, known_formats) == [
        "spec.model.cache: a pvc:// model is mounted, not downloaded, so it has nothing to cache"]


def pod(uid="u1", *, message=None, exit_code=0, name="storage-initializer"):
    state = {"running": {}} if message is None else {"terminated": {"exitCode": exit_code, "message": message}}
    return {"metadata": {"uid": uid}, "status": {"initContainerStatuses": [{"name": name, "state": state}]}}


@pytest.mark.parametrize("body, result", [
    (pod(message="cache: hit"), "hit"),
    (pod(message="cache: miss\n"), "miss"),
    (pod(), None),  # still running
    (pod(message="cache: miss", exit_code=1), None),  # failed: no model, no count
    (pod(message=""), None),  # no cache (or KServe's own initializer image)
    (pod(message="cache: maybe"), None),
    (pod(message="cache: hit", name="other"), None),
    ({"metadata": {}, "status": {}}, None),
])
def test_the_result_is_read_off_the_initializers_termination_message(body, result):
    assert model_cache_result(body) == result


def counted():
    return {r: metrics.MODEL_CACHE.labels(r)._value.get() for r in ("hit", "miss")}


def test_each_pod_is_counted_once_and_pods_found_by_a_listing_not_at_all():
    before = counted()
    metrics.count_model_cache("pod-a", "miss")
    metrics.count_model_cache("pod-a", "miss")  # its next MODIFIED event
    metrics.count_model_cache("pod-b", "hit")
    metrics.count_model_cache("pod-c", None)
    metrics.count_model_cache("pod-d", "hit", listed=True)  # an operator restart's listing: counted before it
    metrics.count_model_cache("pod-d", "hit")
    after = counted()
    assert (after["miss"] - before["miss"], after["hit"] - before["hit"]) == (1, 1)
    for uid in "abcd":
        metrics.forget_pod(f"pod-{uid}")


def test_a_cache_the_operator_s_storage_initializer_cannot_use_is_refused_in_the_status_and_touches_nothing():
    """An operator run with a runtime table whose initializer does not read
    the cache (KServe's image, no `cache: true`): every pod would download
    anyway, so spec.model.cache is refused in the status, not ignored, and
    what serves is not touched. The shipped table's initializer uses it."""
    from test_plan import Loop

    loop = Loop()
    assert loop.table.storage_initializer.cache
    loop.model["spec"]["model"]["cache"] = CACHE
    loop.run(), loop.run()
    assert loop.condition("Ready")[0] == "True"

    loop = Loop()
    loop.table = loop.table.model_copy(update={"storage_initializer": loop.table.storage_initializer.model_copy(
        update={"image": "docker.io/kserve/storage-initializer:v0.15.0", "cache": False})})
    loop.run(), loop.run()
    before = {key: dict(body) for key, body in loop.children.items()}
    loop.model["spec"]["model"]["cache"] = CACHE
    step = loop.run()
    assert step.apply == () and step.prune == () and loop.children == before
    assert loop.condition("Stalled") == ("True", "InvalidSpec")
    assert ("spec.model.cache: the operator's storage initializer docker.io/kserve/storage-initializer:v0.15.0 "
            "does not use a model cache") in loop.status["message"], loop.status["message"]
