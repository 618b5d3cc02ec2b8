"""controller.Controller: the observe -> plan -> write -> report loop, driven
against a fake `kube` (every write recorded in order, any of them made to
fail) and fed through the same watch-event entry points kopf calls.

The fake plays just enough of the API server: an applied child becomes live
at once (a new resourceVersion, a Deployment whose pods are all ready), the
pods of each Deployment are reported through on_pod_event, the status write
and the annotation patch change the stored ModelDeployment.
"""
import asyncio
import copy
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes.client.exceptions import ApiException

from modeldeploy.controller import Controller
from modeldeploy.reconcile.drift import FIELD_MANAGER, HANDOVER_MANAGER
from modeldeploy.settings import OperatorSettings

NS, NAME = "ml", "fraud"
KEY = (NS, NAME)
ABORT = "modeldeploy.io/abort"
PROMOTE = "modeldeploy.io/promote"
WRITES = ("apply", "apply_status", "patch_metadata", "delete", "event")


def spec(version="v7", **extra):
    return {"model": {"uri": f"s3://m/{version}", "version": version, "format": "sklearn"}, "replicas": 2,
            "rollout": {"steps": [{"setWeight": 50}, {"pause": {}}]}, **extra}


def api_error(status: int, message: str = "") -> ApiException:
    exc = ApiException(status=status, reason={409: "Conflict", 422: "Unprocessable Entity"}.get(status, "Error"))
    exc.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return exc


def not_served() -> ApiException:
    """The API server's answer for a path it does not serve (no CRD for the
    kind): its mux's bare 404, not a Status (seen on the local control plane)."""
    exc = ApiException(status=404, reason="Not Found")
    exc.body = "404 page not found\n"
    return exc


class FakeKube:
    """The controller's `kube`: records every call, in order; `fail` maps a
    call name to a function (args) -> exception or None."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.calls: list[tuple] = []
        self.objects: dict[tuple[str, str], dict] = {}
        self.model: dict | None = None
        self.fail: dict = {}
        self._rv = 100

    def rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _maybe_fail(self, call, *args):
        hook = self.fail.get(call)
        exc = hook(*args) if hook else None
        if exc is not None:
            raise exc

    async def apply(self, manifest, *, field_manager=FIELD_MANAGER, force=True):
        key = (manifest["kind"], manifest["metadata"]["name"])
        self.calls.append(("apply", key, field_manager, force))
        self._maybe_fail("apply", manifest, field_manager)
        before = self.objects.get(key)
        if field_manager != FIELD_MANAGER:  # a handover: only spec.replicas changes
            live = copy.deepcopy(before)
            live["spec"]["replicas"] = manifest["spec"]["replicas"]
            live["metadata"]["resourceVersion"] = self.rv()
            self.objects[key] = live
            return copy.deepcopy(live)
        live = copy.deepcopy(manifest)
        generation = 1 if before is None else before["metadata"]["generation"] + (before["spec"] != manifest["spec"])
        live["metadata"].update(generation=generation, resourceVersion=self.rv(), uid=f"uid-{key[1]}")
        if manifest["kind"] == "Deployment":
            if "replicas" not in manifest["spec"] and before is not None:
                live["spec"]["replicas"] = before["spec"].get("replicas", 1)
            n = live["spec"].get("replicas", 1)
            live["status"] = {"observedGeneration": generation, "replicas": n, "updatedReplicas": n,
                              "readyReplicas": n, "availableReplicas": n}
            if "replicas" in manifest["spec"]:  # our manager owns the count it sends
                live["metadata"]["managedFields"] = [
                    {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": manifest["apiVersion"],
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]
        self.objects[key] = live
        return copy.deepcopy(live)

    async def apply_status(self, namespace, name, status, *, resource_version=None):
        self.calls.append(("apply_status", copy.deepcopy(status)))
        self._maybe_fail("apply_status", status)
        if resource_version is not None and resource_version != self.model["metadata"]["resourceVersion"]:
            # An apply that names a resourceVersion is a precondition, as the API server checks it.
            raise api_error(409, "the object has been modified; please apply your changes to the latest version")
        self.model = {**self.model, "metadata": {**self.model["metadata"], "resourceVersion": self.rv()},
                      "status": copy.deepcopy(status)}
        return copy.deepcopy(self.model)

    async def patch_metadata(self, res, namespace, name, patch):
        self.calls.append(("patch_metadata", res.kind, copy.deepcopy(patch)))
        self._maybe_fail("patch_metadata", patch)
        annotations = dict(self.model["metadata"].get("annotations") or {})
        for key, value in patch.get("annotations", {}).items():
            if value is None:
                annotations.pop(key, None)
            else:
                annotations[key] = value
        self.model = {**self.model, "metadata": {**self.model["metadata"], "annotations": annotations,
                                                 "resourceVersion": self.rv()}}
        return copy.deepcopy(self.model)

    async def delete(self, res, namespace, name):
        self.calls.append(("delete", (res.kind, name)))
        self._maybe_fail("delete", res, name)
        self.objects.pop((res.kind, name), None)

    async def event(self, involved, *, type, reason, message):
        self.calls.append(("event", reason, message))

    async def get(self, path, *, kind):
        self.calls.append(("get", path))
        return copy.deepcopy(self.model) if kind == "ModelDeployment" else {}

    async def list_all(self, res, namespace, selector=None):
        self.calls.append(("list", res.kind))
        if res.kind == "ModelDeployment":
            return [copy.deepcopy(self.model)]
        if res.kind == "Pod":
            return [copy.deepcopy(pod) for pod in pods_of(self.objects).values()]
        return [copy.deepcopy(body) for (kind, _), body in self.objects.items() if kind == res.kind]

    async def list_pages(self, res, namespace, selector=None):
        yield await self.list_all(res, namespace, selector)

    def close(self):
        self.pool.shutdown(wait=False, cancel_futures=True)

    def writes(self):
        return [call for call in self.calls if call[0] in WRITES]


def pods_of(objects: dict) -> dict[str, dict]:
    """The pods the fake's Deployments run, all ready, by name."""
    pods = {}
    for (kind, name), body in objects.items():
        if kind != "Deployment":
            continue
        labels = body["spec"]["template"]["metadata"]["labels"]
        for i in range(body["spec"].get("replicas", 1)):
            pod_name = f"{name}-{labels['modeldeploy.io/revision']}-{i}"
            pods[pod_name] = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": NS, "labels": dict(labels)},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                           "containerStatuses": [{"name": "server", "restartCount": 0,
                                                  "state": {"running": {}}}]}}
    return pods


class FakeQueue:
    """Records what the watch handlers enqueue; the tests run the passes."""

    def __init__(self):
        self.added = []
        self.idle = True

    def add(self, key):
        self.added.append(key)

    def later(self, key, seconds):
        pass

    async def close(self):
        pass


class Harness:
    def __init__(self, **raw):
        self.kube = FakeKube()
        self.controller = Controller(OperatorSettings(), kube=self.kube)
        self.controller.queue = FakeQueue()
        self.seen: dict[tuple[str, str], str] = {}
        self.pods: dict[str, dict] = {}
        self.kube.model = {
            "apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": NAME, "namespace": NS, "uid": "uid-fraud", "generation": 1,
                         "resourceVersion": self.kube.rv(), "annotations": {}},
            "spec": spec(**raw)}
        self.controller.on_model_event("ADDED", copy.deepcopy(self.kube.model))

    # -- the user ------------------------------------------------------------
    def edit(self, **raw):
        meta = self.kube.model["metadata"]
        self.kube.model = {**self.kube.model, "spec": spec(**raw),
                           "metadata": {**meta, "generation": meta["generation"] + 1, "resourceVersion": self.kube.rv()}}
        self.controller.on_model_event("MODIFIED", copy.deepcopy(self.kube.model))

    def annotate(self, key, value):
        meta = self.kube.model["metadata"]
        annotations = {**(meta.get("annotations") or {}), key: value}
        self.kube.model = {**self.kube.model,
                           "metadata": {**meta, "annotations": annotations, "resourceVersion": self.kube.rv()}}
        self.controller.on_model_event("MODIFIED", copy.deepcopy(self.kube.model))

    # -- the watches ----------------------------------------------------------
    def sync(self):
        """Deliver the watch events for what changed on the fake server."""
        c = self.controller
        c.on_model_event("MODIFIED", copy.deepcopy(self.kube.model))
        for key, body in self.kube.objects.items():
            if self.seen.get(key) != body["metadata"]["resourceVersion"]:
                c.on_child_event("MODIFIED", copy.deepcopy(body))
                self.seen[key] = body["metadata"]["resourceVersion"]
        for key in [k for k in self.seen if k not in self.kube.objects]:
            kind, name = key
            c.on_child_event("DELETED", {"kind": kind, "metadata": {"name": name, "namespace": NS,
                                                                      "ownerReferences": self._refs()}})
            del self.seen[key]
        pods = pods_of(self.kube.objects)
        for pod_name, body in pods.items():
            c.on_pod_event("ADDED", body)
        for pod_name, body in self.pods.items():
            if pod_name not in pods:
                c.on_pod_event("DELETED", body)
        self.pods = pods

    def _refs(self):
        return [{"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "name": NAME,
                 "uid": "uid-fraud", "controller": True}]

    # -- the operator -----------------------------------------------------------
    async def step(self):
        await self.controller._reconcile(KEY)
        self.sync()

    async def settle(self, passes=4):
        for _ in range(passes):
            await self.step()

    @property
    def status(self):
        return self.kube.model["status"]

    def condition(self, kind):
        return next((c["status"], c["reason"]) for c in self.status["conditions"] if c["type"] == kind)

    async def canary_in_flight(self):
        await self.settle()
        assert self.status["rollout"]["stage"] == "Stable"
        self.edit(version="v8")
        await self.settle()
        assert self.status["rollout"]["stage"] == "Canary"
        assert self.status["traffic"]["canary"] == 50
        assert ("Deployment", "fraud-canary") in self.kube.objects


def run(test):
    async def main():
        harness = Harness()
        try:
            await asyncio.wait_for(test(harness), timeout=5)
        finally:
            harness.kube.close()
    asyncio.run(main())


# -- defect 10: record first, then consume ------------------------------------------------


@pytest.mark.parametrize("watch_before_retry", [True, False], ids=["watched", "from-cache"])
def test_defect10_a_lost_status_write_loses_no_request(watch_before_retry):
    async def scenario(h: Harness):
        await h.canary_in_flight()
        h.annotate(ABORT, "true")
        h.kube.calls.clear()
        h.kube.fail["apply_status"] = lambda status: api_error(500, "etcd timeout")
        with pytest.raises(ApiException) as lost:
            await h.controller._reconcile(KEY)
        assert lost.value.status == 500
        assert [c for c in h.kube.calls if c[0] == "apply_status"], "the status write was attempted"
        assert not [c for c in h.kube.calls if c[0] == "patch_metadata"], "the abort was consumed unrecorded"
        assert h.kube.model["metadata"]["annotations"].get(ABORT) == "true"
        assert h.status["rollout"]["stage"] == "Canary"

        # The queue retries; this time the status write goes through.
        del h.kube.fail["apply_status"]
        if watch_before_retry:
            h.sync()  # the children written by the failed pass, as the watch reports them
        h.kube.calls.clear()
        await h.controller._reconcile(KEY)
        kinds = [c[0] for c in h.kube.calls]
        assert "apply_status" in kinds and "patch_metadata" in kinds
        assert kinds.index("apply_status") < kinds.index("patch_metadata"), "recorded first, then consumed"
        status_call = next(c for c in h.kube.calls if c[0] == "apply_status")
        assert status_call[1]["rollout"]["stage"] == "RolledBack"
        assert status_call[1]["stable"]["modelVersion"] == "v7"
        assert ("patch_metadata", "ModelDeployment", {"annotations": {ABORT: None}}) in h.kube.calls
        assert ABORT not in h.kube.model["metadata"]["annotations"]
        assert h.status["rollout"]["stage"] == "RolledBack"
    run(scenario)


def test_a_child_of_a_kind_the_cluster_does_not_serve_is_said_in_the_status_and_touches_nothing():
    """A spec that needs a kind whose CRDs are not installed (a KEDA
    ScaledObject without KEDA, say): the API server answers its apply with a
    404 for the path. Before, the pass failed and was retried for ever with
    nothing in the status; now it is held and said, naming the kind."""
    async def scenario(h: Harness):
        await h.settle()
        h.edit(version="v7", traffic={"provider": "gatewayAPI",
                                      "gatewayAPI": {"parentRefs": [{"name": "public-gw", "namespace": "gateways"}]}})
        h.kube.fail["apply"] = lambda manifest, manager: not_served() if manifest["kind"] == "HTTPRoute" else None
        await h.controller._reconcile(KEY)
        stalled = next(c for c in h.status["conditions"] if c["type"] == "Stalled")
        assert (stalled["status"], stalled["reason"]) == ("True", "InvalidSpec"), stalled
        assert "it needs a HTTPRoute (gateway.networking.k8s.io/v1), which this cluster's API server does not " \
               "serve" in stalled["message"], stalled["message"]

        # A 404 that is not about the kind (e.g. the namespace gone) is not a refusal: retried.
        h.kube.fail["apply"] = lambda manifest, manager: (
            api_error(404, 'namespaces "ml" not found') if manifest["kind"] == "HTTPRoute" else None)
        with pytest.raises(ApiException):
            await h.controller._reconcile(KEY)

        del h.kube.fail["apply"]  # the CRDs installed: the next pass applies it
        await h.settle()
        assert ("HTTPRoute", NAME) in h.kube.objects
        assert h.condition("Stalled")[0] == "False"
    run(scenario)


def test_a_model_outside_the_watched_namespaces_is_never_cached_nor_reconciled_whatever_listed_it():
    """CI saw two operators act on one model: the tests' in-process operator
    (kopf watching only its session's namespaces) listed every namespace in
    its warm-up, and its resync then reconciled other tests' models from
    copies no watch kept fresh, with another runtime table (the revision
    flipped between two values, each pass aborting the other's canary). A
    model in a namespace the operator does not watch is now dropped on
    arrival, however it arrived."""
    controller = Controller(OperatorSettings(namespaces=["team-*", "models"]), kube=FakeKube())
    controller.queue = FakeQueue()
    try:
        for namespace in ("team-a", "models", "ml", "other-team-a"):
            controller.on_model_event(None, {"metadata": {"name": "fraud", "namespace": namespace,
                                                          "resourceVersion": "1"}, "spec": spec()})
        assert sorted(controller.cache.models) == [("models", "fraud"), ("team-a", "fraud")]
        assert sorted(controller.queue.added) == [("models", "fraud"), ("team-a", "fraud")]
    finally:
        controller.kube.close()


def test_a_pass_planned_from_an_older_copy_never_overwrites_a_newer_status():
    """CI twice saw a promotion undone: after v3 was promoted (status and
    Event), the next version's rollout began from a status that still had v3
    in flight, so v3 was recorded Aborted and stable went back to v2. A
    status write lands whatever the object became since the pass read it:
    a pass planned from an older copy (its watch event not there yet) set
    the newer status back. The write names the resourceVersion the pass
    read; refused (409), the pass records nothing else -- no Event, no
    request consumed -- and plans again soon, from the newer copy."""
    async def scenario(h: Harness):
        await h.canary_in_flight()
        h.annotate(PROMOTE, "true")
        newer = {**h.status, "message": "written by a pass the cache has not seen yet"}
        h.kube.model = {**h.kube.model, "status": newer,
                        "metadata": {**h.kube.model["metadata"], "resourceVersion": h.kube.rv()}}
        h.kube.calls.clear()
        requeue = await h.controller._reconcile(KEY)
        assert [c for c in h.kube.calls if c[0] == "apply_status"], "the pass tried to record its decision"
        assert h.status == newer, "a status planned from an older copy overwrote the newer one"
        assert not [c for c in h.kube.calls if c[0] in ("event", "patch_metadata")], h.kube.calls
        assert h.kube.model["metadata"]["annotations"].get(PROMOTE) == "true"
        assert requeue == 0, requeue  # at once, from the newer copy read back (not the lagging watch)
        await h.controller._reconcile(KEY)
        h.sync()
        assert h.status["rollout"]["stage"] in ("Promoting", "Stable"), h.status["rollout"]
        await h.settle()
        assert h.status["rollout"]["stage"] == "Stable" and h.status["stable"]["modelVersion"] == "v8"
        assert PROMOTE not in h.kube.model["metadata"]["annotations"]
    run(scenario)


def test_defect10_a_lost_status_write_loses_no_promote_either():
    async def scenario(h: Harness):
        await h.canary_in_flight()
        h.annotate(PROMOTE, "true")
        h.kube.fail["apply_status"] = lambda status: api_error(500)
        for _ in range(2):  # lost twice in a row, the watch delivering what was written
            h.kube.calls.clear()
            with pytest.raises(ApiException):
                await h.controller._reconcile(KEY)
            assert not [c for c in h.kube.calls if c[0] == "patch_metadata"]
            h.sync()
        assert h.kube.model["metadata"]["annotations"].get(PROMOTE) == "true"
        del h.kube.fail["apply_status"]
        h.kube.calls.clear()
        await h.settle(3)
        kinds = [c[0] for c in h.kube.calls]
        assert kinds.index("apply_status") < kinds.index("patch_metadata")
        assert PROMOTE not in h.kube.model["metadata"]["annotations"]
        assert h.status["stable"]["modelVersion"] == "v8"
        assert [(e["modelVersion"], e["result"]) for e in h.status["history"]] == [("v7", "Deployed"),
                                                                                  ("v8", "Promoted")]
    run(scenario)


def test_a_404_on_the_status_write_consumes_nothing_and_posts_no_event():
    async def scenario(h: Harness):
        await h.canary_in_flight()
        h.annotate(ABORT, "true")
        h.kube.fail["apply_status"] = lambda status: api_error(404, "not found")
        h.kube.calls.clear()
        assert await h.controller._reconcile(KEY) is None  # deleted meanwhile: nothing to report
        assert not [c for c in h.kube.calls if c[0] in ("patch_metadata", "event")]
    run(scenario)


async def _abort_with_a_lost_annotation_patch(h: Harness):
    """The status that records the abort is written; the patch that removes
    the annotation fails (500); the queue retries."""
    await h.canary_in_flight()
    h.annotate(ABORT, "true")
    h.kube.calls.clear()
    h.kube.fail["patch_metadata"] = lambda patch: api_error(500)
    with pytest.raises(ApiException):
        await h.controller._reconcile(KEY)
    assert h.status["rollout"]["stage"] == "RolledBack", "recorded before the consume was tried"
    del h.kube.fail["patch_metadata"]
    h.sync()
    await h.settle(2)


def test_defect10_a_lost_annotation_patch_keeps_the_recorded_decision():
    """The status is written, the patch fails: the request is still there,
    but the decision is recorded, so the retry consumes it without acting twice."""
    async def scenario(h: Harness):
        await _abort_with_a_lost_annotation_patch(h)
        assert ABORT not in h.kube.model["metadata"]["annotations"]
        assert h.status["rollout"]["stage"] == "RolledBack"
        assert [(e["modelVersion"], e["result"]) for e in h.status["history"]] == [("v7", "Deployed"),
                                                                                  ("v8", "RolledBack")]
        assert ("Deployment", "fraud-canary") not in h.kube.objects
    run(scenario)


def test_defect10_a_lost_annotation_patch_still_announces_the_rollback():
    """BUG (operator): Events are posted only after the annotation patch
    (controller._report). When that patch fails, the pass that decided the
    rollback never posts its RolledBack Event, and the retry, finding the
    decision already recorded, has nothing to announce: the Event is lost."""
    async def scenario(h: Harness):
        await _abort_with_a_lost_annotation_patch(h)
        reasons = [c[1] for c in h.kube.calls if c[0] == "event"]
        assert "RolledBack" in reasons, reasons
    run(scenario)


def test_defect10_a_lost_annotation_patch_does_not_warn_that_the_honoured_abort_was_ignored():
    """BUG (operator): the retry consumes the abort it already honoured with
    a Warning 'modeldeploy.io/abort ignored: no canary is in flight'."""
    async def scenario(h: Harness):
        await _abort_with_a_lost_annotation_patch(h)
        warnings = [c[2] for c in h.kube.calls if c[0] == "event" and c[1] == "RequestIgnored"]
        assert warnings == [], warnings
    run(scenario)


# -- steady state -------------------------------------------------------------------------


def test_a_steady_state_makes_no_write_call():
    async def scenario(h: Harness):
        await h.settle()
        assert h.condition("Ready") == ("True", "Serving")
        h.kube.calls.clear()
        for _ in range(3):
            await h.step()
        assert h.kube.writes() == []
        assert h.kube.calls == [], "and no read either: everything comes from the cache"
    run(scenario)


def test_a_steady_canary_pause_makes_no_write_call():
    async def scenario(h: Harness):
        await h.canary_in_flight()
        h.kube.calls.clear()
        await h.step()
        await h.step()
        assert h.kube.writes() == []
    run(scenario)


# -- a restart: the cache is filled before the first pass ------------------------------------


def test_a_restarted_operator_lists_what_it_watches_before_its_first_pass():
    """Found by test_restart.py (1 run in 4): kopf delivered the model's
    listing before its route's and its pods', and the restarted operator's
    first pass set a canary at 60% back to 0% (then up again)."""
    async def scenario(h: Harness):
        await h.canary_in_flight()
        h.kube.calls.clear()
        restarted = Controller(OperatorSettings(), kube=h.kube)
        restarted.queue = FakeQueue()
        await restarted.start()
        try:
            # kopf's first event: the model, before any child's or pod's.
            restarted.on_model_event(None, copy.deepcopy(h.kube.model))
            await restarted._reconcile(KEY)
        finally:
            for task in restarted._tasks:
                task.cancel()
        assert h.kube.writes() == [], "the canary is where it was: nothing to change"
        assert {call[1] for call in h.kube.calls if call[0] == "list"} >= {
            "ModelDeployment", "Deployment", "Service", "Pod"}
    run(scenario)


# -- 422: a child the API server refuses ----------------------------------------------------


def test_a_422_on_a_child_holds_invalid_spec_and_writes_nothing_more():
    async def scenario(h: Harness):
        await h.settle()
        stable_before = copy.deepcopy(h.status["stable"])
        objects_before = copy.deepcopy(h.kube.objects)
        h.kube.fail["apply"] = lambda manifest, manager: (
            api_error(422, 'Deployment.apps "fraud-canary" is invalid: env[0].name: Invalid value')
            if manifest["metadata"]["name"] == "fraud-canary" else None)
        h.edit(version="v8")
        h.kube.calls.clear()
        await h.controller._reconcile(KEY)
        applies = [c for c in h.kube.calls if c[0] == "apply"]
        assert applies[-1][1] == ("Deployment", "fraud-canary"), "nothing applied after the refusal"
        assert not [c for c in h.kube.calls if c[0] in ("delete", "patch_metadata")]
        assert h.condition("Stalled") == ("True", "InvalidSpec")
        assert "env[0].name: Invalid value" in h.status["message"]
        assert h.status["stable"] == stable_before, "the stable snapshot is kept"
        assert ("event", "InvalidSpec") in [c[:2] for c in h.kube.calls]
        # The next pass is refused again and stays held: still no prune.
        h.sync()
        h.kube.calls.clear()
        await h.controller._reconcile(KEY)
        assert [c[:2] for c in h.kube.writes()] == [("apply", ("Deployment", "fraud-canary"))], \
            "held: the one refused apply, no status change, no prune, no Event"
        assert h.kube.objects.keys() == objects_before.keys()
        assert h.condition("Stalled") == ("True", "InvalidSpec")
    run(scenario)


def test_a_422_after_writes_that_landed_reports_the_traffic_they_left():
    """Found by the stateful test (invariant 4): the user names a version the
    API server refuses and halves the replicas in the same edit. Stable's
    apply lands (2 -> 1 pods), the canary's is refused; the held status must
    measure the split from what the writes left, not from before them."""
    async def scenario(h: Harness):
        await h.canary_in_flight()
        h.kube.fail["apply"] = lambda manifest, manager: (
            api_error(422, 'Deployment.apps "fraud-canary" is invalid: env[0].name: Invalid value')
            if manifest["metadata"]["name"] == "fraud-canary" else None)
        h.edit(version="v9", replicas=1)
        await h.controller._reconcile(KEY)
        assert h.kube.objects[("Deployment", "fraud-stable")]["spec"]["replicas"] == 1
        assert h.kube.objects[("Deployment", "fraud-canary")]["spec"]["replicas"] == 2
        assert h.condition("Stalled") == ("True", "InvalidSpec")
        assert (h.status["traffic"]["stable"], h.status["traffic"]["canary"]) == (33, 67), h.status["traffic"]
    run(scenario)


def test_an_api_error_other_than_422_on_a_child_is_raised_for_the_queue_to_retry():
    async def scenario(h: Harness):
        h.kube.fail["apply"] = lambda manifest, manager: api_error(503)
        with pytest.raises(ApiException) as raised:
            await h.controller._reconcile(KEY)
        assert raised.value.status == 503
        assert not [c for c in h.kube.calls if c[0] in ("apply_status", "patch_metadata", "delete")]
    run(scenario)


# -- 409 on the replicas handover --------------------------------------------------------------


def test_a_409_on_the_handover_apply_is_tolerated():
    async def scenario(h: Harness):
        await h.settle()
        assert h.kube.objects[("Deployment", "fraud-stable")]["spec"]["replicas"] == 2
        # replicas: 2 -> autoscaling: our manager stops sending spec.replicas.
        meta = h.kube.model["metadata"]
        auto = {k: v for k, v in spec(autoscaling={"minReplicas": 2, "maxReplicas": 10},
                                       resources={"requests": {"cpu": "1"}}).items() if k != "replicas"}
        h.kube.model = {**h.kube.model, "spec": auto,
                        "metadata": {**meta, "generation": meta["generation"] + 1, "resourceVersion": h.kube.rv()}}
        h.controller.on_model_event("MODIFIED", copy.deepcopy(h.kube.model))
        h.kube.fail["apply"] = lambda manifest, manager: (
            api_error(409, "Apply failed with 1 conflict: conflict with \"kube-controller-manager\": .spec.replicas")
            if manager == HANDOVER_MANAGER else None)
        h.kube.calls.clear()
        await h.controller._reconcile(KEY)
        applies = [(c[1], c[2]) for c in h.kube.calls if c[0] == "apply"]
        handovers = [a for a in applies if a[1] == HANDOVER_MANAGER]
        assert handovers == [(("Deployment", "fraud-stable"), HANDOVER_MANAGER)], applies
        assert [c[2:] for c in h.kube.calls if c[0] == "apply" and c[2] == HANDOVER_MANAGER] == [
            (HANDOVER_MANAGER, False)], "the handover is sent without force"
        after = applies[applies.index(handovers[0]) + 1:]
        assert (("Deployment", "fraud-stable"), FIELD_MANAGER) in after, "the pass went on after the 409"
        assert (("HorizontalPodAutoscaler", NAME), FIELD_MANAGER) in after
        assert [c for c in h.kube.calls if c[0] == "apply_status"], "and reported"
    run(scenario)


# -- a namespace being deleted ------------------------------------------------------------------


def test_a_terminating_namespace_is_left_alone_for_a_while():
    async def scenario(h: Harness):
        h.kube.fail["apply"] = lambda manifest, manager: api_error(
            403, 'deployments.apps "fraud-stable" is forbidden: unable to create new content in namespace ml '
                 'because it is being terminated (NamespaceTerminating)')
        assert await h.controller.reconcile(KEY) is None, "not an error: nothing to converge"
        assert len(h.kube.calls) == 1
        h.kube.calls.clear()
        assert await h.controller.reconcile(KEY) is None
        assert h.kube.calls == [], "no request while the namespace empties"
    run(scenario)


# -- the watch handlers ------------------------------------------------------------------------


def test_watch_events_enqueue_the_owner_only_when_it_is_known():
    async def scenario(h: Harness):
        queue = h.controller.queue
        assert queue.added == [KEY]
        await h.step()  # its writes' watch events (echoes of the responses stored) and its pods' arrive
        queue.added.clear()
        h.sync()  # nothing changed: the echo of what the pass wrote costs no pass
        assert queue.added == []
        h.kube.objects[("Service", NAME)]["metadata"]["resourceVersion"] = h.kube.rv()  # someone else's write
        h.sync()
        assert queue.added == [KEY]
        queue.added.clear()
        h.controller.on_model_event(None, copy.deepcopy(h.kube.model))
        assert queue.added == [KEY], "a listing (a restart, a re-list) plans every model once"
        queue.added.clear()
        stray = {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "x", "namespace": NS, "resourceVersion": "1", "ownerReferences": [
                     {"kind": "ModelDeployment", "name": "unknown", "controller": True}]}}
        h.controller.on_child_event("ADDED", stray)
        assert queue.added == [], "no pass for a ModelDeployment the cache does not hold"
        h.controller.on_model_event("DELETED", copy.deepcopy(h.kube.model))
        assert KEY not in h.controller.cache.models
        assert await h.controller._reconcile(KEY) is None
    run(scenario)


def test_a_model_goes_ahead_in_the_queue_until_its_first_children_are_written():
    # In a burst of new models, each one's Deployment is written before other
    # models' status refreshes (kube/queue.py head start).
    async def scenario(h: Harness):
        c = h.controller
        assert c._has_no_children(KEY), "a new model is urgent"
        assert not c._has_no_children((NS, "unknown")), "a key with no model is not"
        await h.step()
        assert ("Deployment", "fraud-stable") in h.kube.objects
        assert not c._has_no_children(KEY), "once its children exist it waits its turn"
        # The real queue asks the controller, at every wait for a slot.
        assert Controller(OperatorSettings(), kube=FakeKube()).queue._urgent.__name__ == "_has_no_children"
    run(scenario)
