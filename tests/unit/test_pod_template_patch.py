"""Issue 14: spec.podTemplatePatch, a strategic-merge patch of the pod
template, and what refuses it (Pod Security restricted, the operator's
labels and container) in the status, nothing serving touched."""

import pytest

from modeldeploy.builders.patch import PatchError, strategic_merge
from modeldeploy.builders.security import restricted_violations
from support.golden import assert_matches_golden
from test_plan import Loop

BASE = {
    "metadata": {"labels": {"a": "1"}},
    "spec": {
        "containers": [{"name": "model-server", "image": "x", "env": [{"name": "A", "value": "1"}],
                        "volumeMounts": [{"name": "m", "mountPath": "/mnt"}]}],
        "volumes": [{"name": "m", "emptyDir": {}}],
        "tolerations": [{"key": "t"}],
    },
}


def test_maps_merge_and_null_deletes_a_key():
    patched = strategic_merge(BASE, {"metadata": {"labels": {"b": "2", "a": None}}})
    assert patched["metadata"]["labels"] == {"b": "2"}
    assert BASE["metadata"]["labels"] == {"a": "1"}, "the base is not changed"


def test_lists_with_a_merge_key_merge_item_by_item_and_others_are_replaced():
    patched = strategic_merge(BASE, {"spec": {
        "containers": [{"name": "model-server", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "9"}]},
                       {"name": "sidecar", "image": "y"}],
        "volumes": [{"name": "cache", "emptyDir": {"medium": "Memory"}}],
        "tolerations": [{"key": "u"}]}})
    server, sidecar = patched["spec"]["containers"]
    assert server["image"] == "x" and server["env"] == [{"name": "A", "value": "9"}, {"name": "B", "value": "2"}]
    assert sidecar == {"name": "sidecar", "image": "y"}
    assert [v["name"] for v in patched["spec"]["volumes"]] == ["m", "cache"]
    assert patched["spec"]["tolerations"] == [{"key": "u"}], "no merge key: replaced"


def test_patch_directives_delete_an_item_and_replace_a_map():
    patched = strategic_merge(BASE, {"spec": {"volumes": [{"name": "m", "$patch": "delete"}],
                                              "containers": [{"name": "model-server", "volumeMounts": [
                                                  {"mountPath": "/mnt", "$patch": "delete"}]}]},
                                     "metadata": {"$patch": "replace", "labels": {"c": "3"}}})
    assert patched["spec"]["volumes"] == [] and patched["spec"]["containers"][0]["volumeMounts"] == []
    assert patched["metadata"] == {"labels": {"c": "3"}}


def test_a_list_item_without_its_merge_key_is_an_error_that_says_where():
    with pytest.raises(PatchError, match=r"spec.containers: each item needs its merge key 'name'"):
        strategic_merge(BASE, {"spec": {"containers": [{"image": "y"}]}})


def test_restricted_names_each_violation():
    spec = {"hostNetwork": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [{"name": "c", "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
                            "ports": [{"containerPort": 80, "hostPort": 80}]}]}
    found = restricted_violations(spec)
    for expected in ("hostNetwork: true", "volume h: hostPath volumes are not allowed", "container c: privileged: true",
                     "container c: allowPrivilegeEscalation must be false", "capabilities.drop must include ALL",
                     "capabilities.add may only be NET_BIND_SERVICE (got SYS_ADMIN)", "runAsNonRoot must be true",
                     "seccompProfile.type must be RuntimeDefault or Localhost", "hostPort 80 is not allowed"):
        assert any(expected in line for line in found), (expected, found)


def patched_loop(patch):
    loop = Loop()
    loop.model["spec"]["podTemplatePatch"] = patch
    return loop


SIDECAR_PATCH = {
    "metadata": {"annotations": {"prometheus.io/scrape": "true"}},
    "spec": {"shareProcessNamespace": False,
             "containers": [{"name": "model-server", "env": [{"name": "OMP_NUM_THREADS", "value": "4"}],
                             "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}]}],
             "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}]},
}


def test_a_patch_reaches_the_pods_golden():
    loop = patched_loop(SIDECAR_PATCH)
    loop.run()
    assert_matches_golden("pod-template-patch", [loop.children[("Deployment", "fraud-stable")]])


def test_the_operator_s_own_pods_meet_restricted():
    loop = Loop()
    loop.run()
    assert restricted_violations(loop.children[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]) == []


@pytest.mark.parametrize("patch, reason", [
    ({"spec": {"hostNetwork": True}}, "breaks Pod Security restricted: hostNetwork: true"),
    ({"spec": {"containers": [{"name": "model-server", "securityContext": {"runAsUser": 0}}]}},
     "container model-server: runAsUser must not be 0"),
    ({"metadata": {"labels": {"modeldeploy.io/role": "stable"}}}, "may not change the operator's labels"),
    ({"spec": {"containers": [{"name": "model-server", "$patch": "delete"}]}}, "may not remove the model-server"),
    ({"spec": {"containers": [{"image": "x"}]}}, "each item needs its merge key 'name'"),
])
def test_a_patch_that_breaks_what_the_operator_guarantees_is_refused_in_the_status_and_touches_nothing(patch, reason):
    loop = Loop()
    loop.run(), loop.run()
    before = {key: dict(body) for key, body in loop.children.items()}
    loop.model["spec"]["podTemplatePatch"] = patch
    step = loop.run()
    assert step.apply == () and step.prune == ()
    assert loop.condition("Stalled") == ("True", "InvalidSpec")
    assert reason in loop.status["message"], loop.status["message"]
    assert loop.children == before
