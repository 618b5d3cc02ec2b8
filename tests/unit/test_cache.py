"""kube/cache.py Cache: the watch cache the reconcile reads all of its inputs from."""
import copy

from modeldeploy.kube.cache import Cache
from modeldeploy.reconcile.drift import FIELD_MANAGER
from modeldeploy.status import PodSummary

NS = "ml"


def owner_ref(name, *, controller=True, kind="ModelDeployment"):
    return {"apiVersion": "modeldeploy.io/v1alpha1", "kind": kind, "name": name, "uid": f"uid-{name}",
            "controller": controller, "blockOwnerDeletion": True}


def model(name="fraud", rv="10", version="v7", **meta):
    return {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "resourceVersion": rv, **meta},
            "spec": {"model": {"version": version}}}


def child(kind="Service", name="fraud", owner="fraud", rv="1", namespace=NS, refs=None, **extra):
    meta = {"name": name, "namespace": namespace, "resourceVersion": rv}
    if refs is None and owner is not None:
        refs = [owner_ref(owner)]
    if refs is not None:
        meta["ownerReferences"] = refs
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "spec": {"x": rv}, **extra}


def pod(name="fraud-stable-abc", owner="fraud", ready=True, restarts=0, waiting=None, rv="1", **status_extra):
    state = {"waiting": {"reason": waiting, "message": "back-off"}} if waiting else {"running": {}}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": rv,
                     "labels": {"modeldeploy.io/name": owner, "modeldeploy.io/role": "stable",
                                "modeldeploy.io/revision": "r1"} if owner else {}},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                   "containerStatuses": [{"name": "server", "restartCount": restarts, "state": state}],
                   **status_extra},
    }


def entry(manager, operation="Apply", subresource=None, fields=None):
    e = {"manager": manager, "operation": operation, "apiVersion": "apps/v1", "time": "2026-01-01T00:00:00Z",
         "fieldsType": "FieldsV1", "fieldsV1": fields or {"f:spec": {"f:replicas": {}}}}
    if subresource:
        e["subresource"] = subresource
    return e


# -- newest resourceVersion wins --------------------------------------------------------


def test_a_write_response_before_an_older_watch_event_is_kept():
    cache = Cache()
    cache.put_model(model(rv="12", version="v8"))  # our status write's response
    cache.put_model(model(rv="11", version="v7"))  # the watch event of the version before it
    assert cache.models[(NS, "fraud")]["metadata"]["resourceVersion"] == "12"
    assert cache.models[(NS, "fraud")]["spec"]["model"]["version"] == "v8"
    cache.put_model(model(rv="13", version="v9"))
    assert cache.models[(NS, "fraud")]["spec"]["model"]["version"] == "v9"


def test_resource_versions_compare_as_numbers_not_strings():
    cache = Cache()
    cache.put_model(model(rv="9"))
    cache.put_model(model(rv="10", version="v8"))  # "10" < "9" as strings
    assert cache.models[(NS, "fraud")]["metadata"]["resourceVersion"] == "10"
    key = cache.put_child(child(rv="100"))
    cache.put_child(child(rv="99"))
    assert cache.children_of(key)[("Service", "fraud")]["metadata"]["resourceVersion"] == "100"


def test_an_equal_resource_version_replaces_and_a_non_numeric_one_trusts_arrival_order():
    cache = Cache()
    cache.put_model(model(rv="5", version="v7"))
    cache.put_model(model(rv="5", version="v8"))
    assert cache.models[(NS, "fraud")]["spec"]["model"]["version"] == "v8"
    cache.put_model(model(rv="opaque", version="v9"))
    assert cache.models[(NS, "fraud")]["spec"]["model"]["version"] == "v9"


def test_an_older_child_event_still_names_its_owner_but_changes_nothing():
    cache = Cache()
    cache.put_child(child(rv="7"))
    assert cache.put_child(child(rv="6")) == (NS, "fraud")
    assert cache.children_of((NS, "fraud"))[("Service", "fraud")]["spec"] == {"x": "7"}
    assert cache.neighbours_of(NS)[("Service", "fraud")]["spec"] == {"x": "7"}


def test_the_echo_of_a_stored_copy_is_not_worth_a_pass():
    # Our write's response is stored first; its watch event (the same
    # resourceVersion) brings nothing new, nor does a re-list of it.
    cache = Cache()
    assert cache.put_model(model(rv="12")) is True
    assert cache.put_model(model(rv="12")) is False
    assert cache.put_model(model(rv="11")) is False, "an older copy"
    assert cache.put_model(model(rv="13")) is True
    assert cache.put_child(child(rv="7")) == (NS, "fraud")
    assert cache.put_child(child(rv="7")) is None
    assert cache.put_child(child(rv="8")) == (NS, "fraud")


def test_children_of_one_shape_share_one_owned_fields_tree():
    # fieldsV1 names owned fields, not values: every Deployment built from the
    # same kind of spec records the same tree, kept once (measured: more than
    # half of a model's cached children).
    fields = {"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
        'k:{"name":"server"}': {".": {}, "f:image": {}}}}}}}
    cache = Cache()
    for name in ("fraud", "spam"):
        body = child(kind="Deployment", name=f"{name}-stable", owner=name)
        # ... but for the owner reference, keyed by the owner's uid
        owned = {**copy.deepcopy(fields), "f:metadata": {"f:ownerReferences": {
            f'k:{{"uid":"uid-{name}"}}': {".": {}, "f:name": {}}}}}
        body["metadata"]["managedFields"] = [entry(FIELD_MANAGER, fields=owned)]
        cache.put_child(body)
        assert cache.children_of((NS, name))[("Deployment", f"{name}-stable")]["metadata"]["managedFields"][0][
            "fieldsV1"] == owned
    trees = [cache.children_of((NS, name))[("Deployment", f"{name}-stable")]["metadata"]["managedFields"][0]["fieldsV1"]
             for name in ("fraud", "spam")]
    assert trees[0]["f:spec"] is trees[1]["f:spec"]
    assert trees[0]["f:metadata"] != trees[1]["f:metadata"]


def test_drop_model():
    cache = Cache()
    cache.put_model(model())
    cache.drop_model(NS, "fraud")
    cache.drop_model(NS, "absent")  # no error
    assert cache.models == {}


# -- managedFields ---------------------------------------------------------------------


def test_managed_fields_are_trimmed_to_our_own_apply_entry():
    ours = entry(FIELD_MANAGER)
    body = child(kind="Deployment", name="fraud-stable")
    body["metadata"]["managedFields"] = [
        entry("kube-controller-manager", "Update", "status"),
        entry("kubectl-edit", "Update"),
        entry(FIELD_MANAGER, "Update"),  # ours, but not an Apply
        entry(FIELD_MANAGER, "Apply", "status"),  # ours, but a subresource
        ours,
        entry("modeldeploy-operator-handover"),
    ]
    original = copy.deepcopy(body)
    cache = Cache()
    key = cache.put_child(body)
    stored = cache.children_of(key)[("Deployment", "fraud-stable")]
    assert stored["metadata"]["managedFields"] == [
        {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "apps/v1", "fieldsV1": ours["fieldsV1"]}]
    assert cache.neighbours_of(NS)[("Deployment", "fraud-stable")]["metadata"]["managedFields"] == \
        stored["metadata"]["managedFields"]
    assert {k: v for k, v in stored["metadata"].items() if k != "managedFields"} == \
        {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    assert stored["spec"] == body["spec"]
    assert body == original, "the event's body is not modified"


def test_an_object_with_no_entry_of_ours_keeps_no_managed_fields():
    body = model()
    body["metadata"]["managedFields"] = [entry("kubectl-client-side-apply", "Update")]
    cache = Cache()
    cache.put_model(body)
    assert "managedFields" not in cache.models[(NS, "fraud")]["metadata"]


# -- children ----------------------------------------------------------------------------


def test_children_are_indexed_by_their_controller_model_deployment():
    cache = Cache()
    assert cache.put_child(child("Service", "fraud", owner="fraud")) == (NS, "fraud")
    assert cache.put_child(child("Deployment", "fraud-stable", owner="fraud")) == (NS, "fraud")
    assert cache.put_child(child("Service", "spam", owner="spam")) == (NS, "spam")
    assert cache.put_child(child("Service", "fraud", owner="fraud", namespace="other")) == ("other", "fraud")
    assert set(cache.children_of((NS, "fraud"))) == {("Service", "fraud"), ("Deployment", "fraud-stable")}
    assert set(cache.children_of((NS, "spam"))) == {("Service", "spam")}
    assert set(cache.children_of(("other", "fraud"))) == {("Service", "fraud")}
    assert cache.children_of((NS, "absent")) == {}


def test_children_of_returns_a_copy():
    cache = Cache()
    key = cache.put_child(child())
    view = cache.children_of(key)
    view.clear()
    assert cache.children_of(key)


def test_only_a_controller_reference_to_a_model_deployment_makes_an_owner():
    cache = Cache()
    not_controller = child("Service", "a", refs=[owner_ref("fraud", controller=False)])
    other_kind = child("Service", "b", refs=[owner_ref("fraud", kind="Deployment")])
    orphan = child("Service", "c", owner=None)
    for body in (not_controller, other_kind, orphan):
        assert cache.put_child(body) is None
    assert cache.children == {}
    assert set(cache.neighbours_of(NS)) == {("Service", "a"), ("Service", "b"), ("Service", "c")}


def test_neighbours_hold_every_watched_child_whatever_its_owner():
    cache = Cache()
    cache.put_child(child("Service", "fraud", owner="fraud"))
    cache.put_child(child("Service", "fraud-canary", owner="fraud-canary"))
    cache.put_child(child("Service", "hand-made", owner=None))
    cache.put_child(child("Service", "elsewhere", owner="fraud", namespace="other"))
    assert set(cache.neighbours_of(NS)) == {("Service", "fraud"), ("Service", "fraud-canary"),
                                            ("Service", "hand-made")}
    assert set(cache.neighbours_of("other")) == {("Service", "elsewhere")}
    assert cache.neighbours_of("empty") == {}


def test_the_same_name_of_two_kinds_is_two_children():
    cache = Cache()
    cache.put_child(child("Service", "fraud"))
    cache.put_child(child("HorizontalPodAutoscaler", "fraud"))
    assert set(cache.children_of((NS, "fraud"))) == {("Service", "fraud"), ("HorizontalPodAutoscaler", "fraud")}


def test_a_child_whose_controller_changes_moves_to_its_new_owner():
    cache = Cache()
    cache.put_child(child("Service", "x-canary", owner="x", rv="1"))
    cache.put_child(child("Deployment", "x-stable", owner="x", rv="2"))
    assert cache.put_child(child("Service", "x-canary", owner="x-canary", rv="3")) == (NS, "x-canary")
    assert set(cache.children_of((NS, "x"))) == {("Deployment", "x-stable")}
    assert set(cache.children_of((NS, "x-canary"))) == {("Service", "x-canary")}
    assert cache.neighbours_of(NS)[("Service", "x-canary")]["metadata"]["resourceVersion"] == "3"


def test_a_child_that_loses_its_controller_leaves_its_old_owner():
    cache = Cache()
    cache.put_child(child("Service", "fraud", owner="fraud", rv="1"))
    assert cache.put_child(child("Service", "fraud", owner=None, rv="2")) is None
    assert cache.children_of((NS, "fraud")) == {}
    assert (NS, "fraud") not in cache.children
    assert ("Service", "fraud") in cache.neighbours_of(NS)


def test_drop_child():
    cache = Cache()
    cache.put_child(child("Service", "fraud"))
    cache.put_child(child("Deployment", "fraud-stable"))
    assert cache.drop_child(child("Service", "fraud")) == (NS, "fraud")
    assert set(cache.children_of((NS, "fraud"))) == {("Deployment", "fraud-stable")}
    assert set(cache.neighbours_of(NS)) == {("Deployment", "fraud-stable")}
    assert cache.drop_child(child("Deployment", "fraud-stable")) == (NS, "fraud")
    assert (NS, "fraud") not in cache.children, "an owner with no child left has no slot"
    assert cache.neighbours_of(NS) == {}
    # Unknown or ownerless: nothing to drop, no error.
    assert cache.drop_child(child("Service", "never-seen", owner="fraud")) == (NS, "fraud")
    assert cache.drop_child(child("Service", "orphan", owner=None)) is None


# -- pods -----------------------------------------------------------------------------------


def test_put_pod_returns_the_owner_when_the_summary_is_new():
    cache = Cache()
    assert cache.put_pod(pod()) == (NS, "fraud")
    [summary] = cache.pods_of((NS, "fraud"))
    assert summary == PodSummary(name="fraud-stable-abc", role="stable", revision="r1", ready=True)


def test_put_pod_returns_none_for_an_update_the_plan_does_not_read():
    cache = Cache()
    cache.put_pod(pod(rv="1"))
    # A new resourceVersion, an IP, a phase note: nothing the summary holds.
    noise = pod(rv="2", podIP="10.0.0.7", hostIP="192.168.0.3")
    noise["metadata"]["annotations"] = {"kubectl.kubernetes.io/restartedAt": "x"}
    assert cache.put_pod(noise) is None
    assert cache.put_pod(pod(rv="3")) is None


def test_put_pod_returns_the_owner_when_readiness_restarts_or_waiting_change():
    cache = Cache()
    cache.put_pod(pod())
    assert cache.put_pod(pod(ready=False)) == (NS, "fraud")
    assert cache.put_pod(pod(ready=False)) is None
    assert cache.put_pod(pod(ready=True)) == (NS, "fraud")
    assert cache.put_pod(pod(restarts=1)) == (NS, "fraud"), "a crash loop on a Ready pod is noticed"
    assert cache.put_pod(pod(restarts=1)) is None
    assert cache.put_pod(pod(restarts=1, waiting="CrashLoopBackOff")) == (NS, "fraud")
    assert cache.put_pod(pod(restarts=1, waiting="ImagePullBackOff")) == (NS, "fraud")
    [summary] = cache.pods_of((NS, "fraud"))
    assert summary.restart_count == 1 and summary.waiting[0].reason == "ImagePullBackOff"


def test_a_pod_without_the_name_label_is_not_ours():
    cache = Cache()
    assert cache.put_pod(pod(owner=None)) is None
    assert cache.pods == {}
    assert cache.drop_pod(pod(owner=None)) is None


def test_pods_of_each_model_deployment_are_kept_apart():
    cache = Cache()
    cache.put_pod(pod("fraud-stable-a"))
    cache.put_pod(pod("fraud-stable-b", ready=False))
    cache.put_pod(pod("spam-stable-a", owner="spam"))
    assert sorted(p.name for p in cache.pods_of((NS, "fraud"))) == ["fraud-stable-a", "fraud-stable-b"]
    assert [p.name for p in cache.pods_of((NS, "spam"))] == ["spam-stable-a"]
    assert cache.pods_of((NS, "absent")) == ()
    assert isinstance(cache.pods_of((NS, "fraud")), tuple)


def test_drop_pod():
    cache = Cache()
    cache.put_pod(pod("fraud-stable-a"))
    cache.put_pod(pod("fraud-stable-b"))
    assert cache.drop_pod(pod("fraud-stable-a")) == (NS, "fraud")
    assert [p.name for p in cache.pods_of((NS, "fraud"))] == ["fraud-stable-b"]
    assert cache.drop_pod(pod("fraud-stable-a")) is None, "already gone: no pass needed"
    assert cache.drop_pod(pod("fraud-stable-b")) == (NS, "fraud")
    assert (NS, "fraud") not in cache.pods
    assert cache.drop_pod(pod("fraud-stable-b")) is None


def test_cached_objects_share_their_keys_and_short_strings_and_keep_every_value():
    # 10,000 models' children repeat the same keys and values; each watch
    # event is parsed into its own copies of them (json builds new strings).
    import json
    cache = Cache()
    long_value = "x" * 200
    for name in ("fraud", "churn"):
        body = json.loads(json.dumps(child(kind="Deployment", name=f"{name}-stable", owner=name,
                                           status={"conditions": [{"type": "Available", "status": "True",
                                                                   "message": long_value}]})))
        cache.put_child(body)
        assert cache.children_of((NS, name))[("Deployment", f"{name}-stable")] == body, "no value changed"
    fraud = cache.children_of((NS, "fraud"))[("Deployment", "fraud-stable")]
    churn = cache.children_of((NS, "churn"))[("Deployment", "churn-stable")]
    fraud_keys = {k: k for k in fraud["status"]["conditions"][0]}
    for key in churn["status"]["conditions"][0]:
        assert fraud_keys[key] is key, f"key {key!r} is stored once"
    assert fraud["status"]["conditions"][0]["status"] is churn["status"]["conditions"][0]["status"]
    assert fraud["apiVersion"] is churn["apiVersion"]
