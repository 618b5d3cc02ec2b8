"""A fake API server and the controllers around it, for the stateful property
test of issue 9 (tests/unit/test_rollout_safety.py). Nothing here talks to a
cluster; everything runs in microseconds and is deterministic.

What behaves like Kubernetes, because the operator's safety depends on it:

- resourceVersion (one global counter, bumped on every real change) and
  metadata.generation (bumped on spec changes only);
- server-side apply with field ownership per manager: a field is removed when
  the only manager that owned it stops sending it (a Deployment's
  spec.replicas then defaults back to 1), a field another manager also owns
  survives, `force` takes a field from another manager; Update operations (the
  HPA writing spec.replicas through the scale subresource) take the fields
  they change. metadata.managedFields is rendered in the real fieldsV1 format
  (f:, k:{json}, "." for keyed list items);
- owner-reference garbage collection: deleting an owner deletes what it
  controls, a Deployment takes its ReplicaSets' pods with it;
- the Deployment controller: ReplicaSets per pod template, RollingUpdate with
  maxSurge/maxUnavailable as the Deployment says (the operator sets 25%/0),
  Recreate, scaling, status (replicas, updatedReplicas, readyReplicas,
  availableReplicas, observedGeneration, the Progressing condition with
  ProgressDeadlineExceeded, Available);
- pods in real Kubernetes shape (labels and annotations from the template,
  pod-template-hash, conditions, containerStatuses with restartCount,
  waiting CrashLoopBackOff, lastState.terminated.finishedAt) that become
  ready, never get ready, crash-loop (sometimes Ready between crashes), start
  slowly, or stay Pending when the node is full (capacity in pods);
- the HPA controller (another field manager) setting replicas within min/max;
- routes (HTTPRoute, VirtualService) stored as applied, with the API's
  defaults, so weights can be read back;
- a Prometheus stub with scripted answers;
- a clock that moves only when told.

`Operator` drives reconcile.plan() like controller.py does: observe -> plan
(-> Prometheus -> plan), then the controller's own write and report code
(Controller._write_children: handover applies, applies, prunes, a 422
re-planned with `refused`; Controller._report: the status write, Events, the
annotation patch) against this fake API server. So the order of those writes
(record first, then consume: issue 9 defect 10) is the operator's, not a copy
of it. A status write that fails (409/500) raises before anything after it.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from kubernetes.client.exceptions import ApiException

from modeldeploy.builders.labels import MODEL_VERSION, NAME, REVISION, ROLE
from modeldeploy.controller import Controller, _refusal
from modeldeploy.kube.cache import _slim
from modeldeploy.reconcile.drift import FIELD_MANAGER, HANDOVER_MANAGER
from modeldeploy.reconcile.kinds import CHILD_KINDS
from modeldeploy.reconcile.plan import plan
from modeldeploy.reconcile.world import World
from modeldeploy.rollout import AnalysisPlan, AnalysisResults, MetricResult
from modeldeploy.runtimes import load_runtime_table
from modeldeploy.status.observed import summarize_pod
from modeldeploy.status.transitions import parse_time

START = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
HPA_MANAGER = "kube-controller-manager"
CHILD_KIND_NAMES = frozenset(kind for _, kind in CHILD_KINDS)
BUILTIN_KINDS = frozenset({"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"})

# Pod behaviours (per model version, see FakeCluster.behave).
READY, SLOW, NEVER_READY, CRASH_LOOP = "ready", "slow", "never-ready", "crash-loop"
BEHAVIOURS = (READY, SLOW, NEVER_READY, CRASH_LOOP)
START_SECONDS = {READY: 5, SLOW: 90}
CRASH_PERIOD = 20  # seconds per crash cycle: back-off, running, ready, then the next crash

# Prometheus answers (FakeCluster.prometheus).
PASS, FAIL, NO_DATA, INF, NAN, SEVERAL_SERIES, UNREACHABLE = (
    "pass", "fail", "no-data", "+Inf", "NaN", "several-series", "unreachable")
ANSWERS = (PASS, FAIL, NO_DATA, INF, NAN, SEVERAL_SERIES, UNREACHABLE)


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _clone(value: Any) -> Any:
    """copy.deepcopy for the JSON-shaped data the fake stores (dicts, lists,
    scalars), several times faster; anything else still goes to deepcopy.
    (Unlike deepcopy it does not keep two references to one sub-object
    shared; nothing here stores such aliases.)"""
    kind = type(value)
    if kind is dict:
        return {key: _clone(item) for key, item in value.items()}
    if kind is list:
        return [_clone(item) for item in value]
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return value
    return copy.deepcopy(value)


# --- server-side apply: field sets ---------------------------------------------

Path = tuple[str, ...]
_ITEM = "."


def _list_keys(kind: str, field_name: str, item: Any) -> tuple[str, ...] | None:
    """The merge keys of a list (None: atomic), as the built-in types declare them.
    CRDs without x-kubernetes-list-type (HTTPRoute, VirtualService) have atomic lists."""
    if not isinstance(item, dict):
        return None
    if field_name == "ownerReferences":
        return ("uid",)
    if kind not in BUILTIN_KINDS:
        return None
    if field_name in ("containers", "initContainers", "env", "volumes"):
        return ("name",)
    if field_name == "volumeMounts":
        return ("mountPath",)
    if field_name == "ports":
        return ("containerPort", "protocol") if "containerPort" in item else ("port", "protocol")
    return None


# Maps declared atomic (a LabelSelector, a Service's selector): owned as a whole.
_ATOMIC_MAPS = {("f:spec", "f:selector")}


def _item_key(item: dict, keys: tuple[str, ...]) -> str:
    key = {name: item.get(name, "TCP" if name == "protocol" else None) for name in keys}
    return "k:" + json.dumps(key, sort_keys=True, separators=(",", ":"))


def flatten(kind: str, obj: Any, prefix: Path = ()) -> dict[Path, Any]:
    """Leaf path -> value of an applied configuration, in fieldsV1 notation."""
    out: dict[Path, Any] = {}
    if isinstance(obj, dict) and obj and prefix not in _ATOMIC_MAPS:
        for name, value in obj.items():
            if prefix == () and name in ("apiVersion", "kind"):
                continue
            if prefix == ("f:metadata",) and name in ("name", "namespace"):
                continue
            out.update(flatten(kind, value, (*prefix, f"f:{name}")))
        return out
    if isinstance(obj, list) and obj:
        keys = _list_keys(kind, prefix[-1][2:], obj[0])
        if keys is not None and all(isinstance(item, dict) for item in obj):
            for item in obj:
                item_path = (*prefix, _item_key(item, keys))
                out[(*item_path, _ITEM)] = {k: item.get(k) for k in keys if k in item}
                out.update(flatten(kind, item, item_path))
            return out
    out[prefix] = _clone(obj)
    return out


def fields_v1(paths) -> dict:
    tree: dict = {}
    for path in paths:
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def _find_item(items: list, key_part: str) -> dict | None:
    wanted = json.loads(key_part[2:])
    for item in items:
        if isinstance(item, dict) and all(item.get(k, "TCP" if k == "protocol" else None) == v
                                          for k, v in wanted.items()):
            return item
    return None


def _set(obj: dict, path: Path, value: Any) -> None:
    node: Any = obj
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if part == _ITEM:
            return  # the item exists by now
        if part.startswith("f:"):
            name = part[2:]
            if last:
                node[name] = _clone(value)
                return
            nxt = path[i + 1]
            if nxt.startswith("k:"):
                if not isinstance(node.get(name), list):
                    node[name] = []
            elif not isinstance(node.get(name), dict):
                node[name] = {}
            node = node[name]
        else:  # k:
            item = _find_item(node, part)
            if item is None:
                item = {k: v for k, v in json.loads(part[2:]).items() if v is not None}
                node.append(item)
            node = item


def _delete(obj: dict, path: Path) -> None:
    trail: list[tuple[Any, str]] = []
    node: Any = obj
    for part in path[:-1]:
        trail.append((node, part))
        if part.startswith("f:"):
            node = node.get(part[2:]) if isinstance(node, dict) else None
        else:
            node = _find_item(node, part) if isinstance(node, list) else None
        if node is None:
            return
    last = path[-1]
    if last == _ITEM:
        parent, part = trail[-1]
        items = parent if isinstance(parent, list) else None
        # trail[-1] is (the list, the k: part): remove that item
        if isinstance(parent, list):
            parent.remove(node)
        trail = trail[:-1]
    elif last.startswith("f:") and isinstance(node, dict):
        node.pop(last[2:], None)
    # Drop maps and lists left empty by the removal.
    for parent, part in reversed(trail):
        child = parent.get(part[2:]) if part.startswith("f:") and isinstance(parent, dict) else None
        if part.startswith("f:") and child in ({}, []):
            parent.pop(part[2:])
        else:
            break


# --- objects -----------------------------------------------------------------------


@dataclass
class Entry:
    manager: str
    operation: str  # Apply | Update
    api_version: str
    fields: dict[Path, Any]
    subresource: str | None = None
    time: str = ""


@dataclass
class Obj:
    body: dict
    entries: list[Entry] = field(default_factory=list)
    version: int = 0  # bumped on every write (body or managedFields)
    _slim: tuple[int, dict] | None = None
    _template_hash: tuple[int, str] | None = None  # (version, pod-template-hash), for the Deployment controller

    def slim(self) -> dict:
        """The object as the operator's watch cache keeps it (kube.cache._slim),
        built once per write and shared (plan() never mutates its world)."""
        if self._slim is None or self._slim[0] != self.version:
            self._slim = (self.version, _slim(self.view()))
        return self._slim[1]

    def view(self) -> dict:
        """The object as a GET returns it, managedFields included."""
        out = _clone(self.body)
        managed = []
        for e in self.entries:
            if not e.fields:
                continue
            entry = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version, "time": e.time,
                     "fieldsType": "FieldsV1", "fieldsV1": fields_v1(e.fields)}
            if e.subresource:
                entry["subresource"] = e.subresource
            managed.append(entry)
        out["metadata"]["managedFields"] = managed
        return out


@dataclass
class ReplicaSet:
    hash: str
    template: dict
    replicas: int = 0


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict
    annotations: dict
    deployment: str
    rs_hash: str
    created: datetime
    scheduled_at: datetime | None = None
    behaviour_since: datetime | None = None  # when its current behaviour took effect
    restarts_base: int = 0
    last_terminated: datetime | None = None
    behaviour: str = READY
    startup_probe: dict | None = None  # the model server's, from the template: the load budget

    @property
    def version(self) -> str:
        return self.annotations.get(MODEL_VERSION, "")


@dataclass
class Prometheus:
    answer: str = PASS
    samples: float | None = 1000.0
    asked: int = 0

    def value(self, answer: str) -> tuple[float | None, str | None]:
        if answer == PASS:
            return 0.001, None
        if answer == FAIL:
            return 0.9, None
        if answer == NO_DATA:
            return None, None
        if answer == INF:
            return math.inf, None
        if answer == NAN:
            return math.nan, None
        if answer == SEVERAL_SERIES:
            return None, "query returned 3 series; aggregate it to one (e.g. sum(...))"
        return None, "Prometheus at http://prometheus.monitoring:9090 is unreachable: connection refused"

    def run(self, queries: AnalysisPlan) -> AnalysisResults:
        """What kube.prometheus.run_plan would return for the scripted answer."""
        self.asked += 1
        metrics = []
        for metric in queries.metrics:
            value, error = self.value(self.answer)
            stable_value = None
            if metric.stable is not None:
                stable_value, stable_error = self.value(self.answer if self.answer in (INF, NAN, UNREACHABLE) else PASS)
                error = error or stable_error
            metrics.append(MetricResult(metric=metric.metric, value=value, stable_value=stable_value, error=error))
        samples, samples_error = None, None
        if queries.samples is not None:
            if self.answer == UNREACHABLE:
                samples_error = self.value(UNREACHABLE)[1]
            elif self.answer == INF:
                samples = math.inf
            else:
                samples = self.samples
        return AnalysisResults(metrics=tuple(metrics), samples=samples, samples_error=samples_error)


class FakeCluster:
    """One namespace of a fake API server, its controllers and a node."""

    def __init__(self, namespace: str = "ml", *, capacity: int = 40, now: datetime = START) -> None:
        self.namespace = namespace
        self.now = now
        self.capacity = capacity  # pods the node(s) can run
        self.rv = 100
        self.uids = 0
        self.objects: dict[tuple[str, str], Obj] = {}
        self.models: dict[str, dict] = {}
        self.replicasets: dict[str, list[ReplicaSet]] = {}
        self.progress_at: dict[str, datetime] = {}
        self.pods: dict[str, Pod] = {}
        self.pod_serial = 0
        self.behaviours: dict[str, tuple[str, datetime]] = {}  # model version -> (behaviour, since)
        self.hpa_wants: int = 1  # what the load asks the HPA for
        self.prometheus = Prometheus()
        self.refused_versions: set[str] = set()  # Deployments of these model versions get a 422
        self.status_failure: int | None = None  # the next status write fails with this code
        # Invariant 8: writes by one ModelDeployment's pass to an object another controls.
        self.foreign_writes: list[str] = []
        self.events: list[tuple[str, str, str, str]] = []  # (model, type, reason, message)
        self._summaries: dict[str, tuple] = {}  # pod name -> (what its body depends on, its summary)

    # -- counters ------------------------------------------------------------
    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _uid(self, prefix: str) -> str:
        self.uids += 1
        return f"{prefix}-{self.uids:08d}-0000-0000-0000-000000000000"

    # -- ModelDeployments (the custom resource) --------------------------------
    def create_model(self, name: str, spec: dict) -> dict:
        md = {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment",
              "metadata": {"name": name, "namespace": self.namespace, "uid": self._uid(name), "generation": 1,
                           "resourceVersion": self._next_rv(), "annotations": {}},
              "spec": _clone(spec), "status": {}}
        self.models[name] = md
        return _clone(md)

    def edit_spec(self, name: str, spec: dict) -> None:
        md = self.models[name]
        scaled = ((md["spec"].get("autoscaling") or {}).get("replicas"))
        if scaled is not None and spec.get("autoscaling") and "replicas" not in spec["autoscaling"]:
            # The HPA's field (written through the scale subresource): a
            # user's apply that never names it leaves it, as with real
            # field managers.
            spec = _clone(spec)
            spec["autoscaling"]["replicas"] = scaled
        if md["spec"] != spec:
            md["spec"] = _clone(spec)
            md["metadata"]["generation"] += 1
            md["metadata"]["resourceVersion"] = self._next_rv()

    def annotate(self, name: str, key: str, value: str | None) -> None:
        annotations = self.models[name]["metadata"].setdefault("annotations", {})
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
        self.models[name]["metadata"]["resourceVersion"] = self._next_rv()

    def write_status(self, name: str, status: dict, *, respond: bool = True) -> dict | None:
        if self.status_failure is not None:
            code, self.status_failure = self.status_failure, None
            raise ApiError(code, "Operation cannot be fulfilled: the object has been modified" if code == 409
                           else "etcdserver: request timed out")
        # The client serializes the body as JSON: Infinity/NaN are not JSON.
        body = json.loads(json.dumps(status, allow_nan=False))
        md = self.models[name]
        if md.get("status") != body:
            md["status"] = body
            md["metadata"]["resourceVersion"] = self._next_rv()
        return _clone(md) if respond else None

    def delete_model(self, name: str) -> None:
        md = self.models.pop(name)
        self._collect(md["metadata"]["uid"])

    # -- children: apply, update, delete ------------------------------------------
    def get(self, kind: str, name: str) -> dict | None:
        obj = self.objects.get((kind, name))
        return obj.view() if obj is not None else None

    def apply(self, manifest: dict, manager: str = FIELD_MANAGER, *, actor: str | None = None,
              force: bool = True, respond: bool = True) -> dict | None:
        """Server-side apply of `manifest` by `manager`; without `force`, a field
        another manager owns with another value is a 409 conflict (Kube.apply
        sends the handover without force).
        `actor`: the uid of the ModelDeployment whose pass writes (invariant 8)."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        key = (kind, name)
        obj = self.objects.get(key)
        if actor is not None and obj is not None:
            holder = _controller_uid(obj.body)
            if holder is not None and holder != actor:
                self.foreign_writes.append(f"{kind} {name} (controlled by {holder}) written by {actor}'s pass")
                raise ApiError(422, f"{kind} {name}: Only one reference can have Controller set to true")
        if kind == "Deployment" and manager == FIELD_MANAGER:
            version = ((manifest["spec"].get("template") or {}).get("metadata") or {}).get(
                "annotations", {}).get(MODEL_VERSION)
            if version in self.refused_versions:
                raise ApiError(422, f'Deployment.apps "{name}" is invalid: spec.template.spec.containers[0].env'
                                    f'[3].name: Invalid value: "bad name": a valid environment variable name')
        new_fields = flatten(kind, manifest)
        if not force and obj is not None:
            # Without force, a field another manager owns with another value is a conflict.
            clash = sorted({e.manager for e in obj.entries if e.manager != manager
                            for path, value in e.fields.items() if path in new_fields and new_fields[path] != value})
            if clash:
                raise ApiError(409, f"Apply failed with {len(clash)} conflict(s): conflict with "
                                    f"{', '.join(repr(m) for m in clash)}")
        if obj is None:
            body = {"apiVersion": manifest["apiVersion"], "kind": kind,
                    "metadata": {"name": name, "namespace": self.namespace, "uid": self._uid(kind.lower()),
                                 "resourceVersion": "", "generation": 1, "creationTimestamp": fmt(self.now)}}
            obj = Obj(body)
            self.objects[key] = obj
            before = None
        else:
            before = _clone(obj.body)
        mine = next((e for e in obj.entries if e.manager == manager and e.operation == "Apply"), None)
        old_fields = mine.fields if mine is not None else {}
        others = [e for e in obj.entries if e is not mine]
        # 1. Fields this manager stopped sending: gone unless another manager owns them.
        for path in sorted(set(old_fields) - set(new_fields), key=len, reverse=True):
            if not any(path in e.fields for e in others):
                _delete(obj.body, path)
        # 2. What it sends now (items first, so keyed items exist before their fields).
        for path in sorted(new_fields, key=lambda p: (len(p), p[-1] != _ITEM)):
            _set(obj.body, path, new_fields[path])
        # 3. Ownership: forced fields with another value leave their old managers.
        for e in others:
            for path in list(e.fields):
                if path in new_fields and e.fields[path] != new_fields[path]:
                    del e.fields[path]
        if mine is None:
            mine = Entry(manager, "Apply", manifest["apiVersion"], new_fields)
            obj.entries.append(mine)
        mine.fields, mine.time = new_fields, fmt(self.now)
        obj.entries = [e for e in obj.entries if e.fields]
        self._defaults(obj.body)
        self._changed(obj, before)
        return obj.view() if respond else None  # `respond`: the caller reads the response

    def update_scale(self, kind: str, name: str, replicas: int, manager: str = HPA_MANAGER) -> None:
        """PUT .../scale as the HPA controller does: an Update that takes spec.replicas."""
        obj = self.objects[(kind, name)]
        before = _clone(obj.body)
        obj.body["spec"]["replicas"] = replicas
        path = ("f:spec", "f:replicas")
        for e in obj.entries:
            if path in e.fields and e.fields[path] != replicas:
                del e.fields[path]
        mine = next((e for e in obj.entries if e.manager == manager and e.subresource == "scale"), None)
        if mine is None:
            mine = Entry(manager, "Update", "autoscaling/v1", {}, subresource="scale")
            obj.entries.append(mine)
        mine.fields[path] = replicas
        mine.time = fmt(self.now)
        obj.entries = [e for e in obj.entries if e.fields]
        self._changed(obj, before)

    def delete(self, kind: str, name: str, *, actor: str | None = None) -> None:
        obj = self.objects.get((kind, name))
        if obj is None:
            raise ApiError(404, f"{kind} {name} not found")
        if actor is not None:
            holder = _controller_uid(obj.body)
            if holder is not None and holder != actor:
                self.foreign_writes.append(f"{kind} {name} (controlled by {holder}) deleted by {actor}'s pass")
        del self.objects[(kind, name)]
        self.rv += 1
        if kind == "Deployment":
            self.replicasets.pop(name, None)
            for pod in [p for p in self.pods.values() if p.deployment == name]:
                del self.pods[pod.name]
        self._collect(obj.body["metadata"]["uid"])

    def _collect(self, uid: str) -> None:
        """Garbage collection: everything whose ownerReferences name `uid`."""
        for (kind, name), obj in list(self.objects.items()):
            refs = obj.body["metadata"].get("ownerReferences") or ()
            if any(ref.get("uid") == uid for ref in refs) and (kind, name) in self.objects:
                self.delete(kind, name)

    def _changed(self, obj: Obj, before: dict | None) -> None:
        obj.version += 1
        meta = obj.body["metadata"]
        if before is None:
            meta["resourceVersion"] = self._next_rv()
            return
        if obj.body.get("spec") != before.get("spec"):
            meta["generation"] = meta.get("generation", 1) + 1
        if obj.body != before:
            meta["resourceVersion"] = self._next_rv()

    def _defaults(self, body: dict) -> None:
        """What the API server fills in (owned by no manager)."""
        kind, spec = body["kind"], body.setdefault("spec", {})
        if kind == "Deployment":
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate",
                                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
            pod = spec.setdefault("template", {}).setdefault("spec", {})
            pod.setdefault("restartPolicy", "Always")
            pod.setdefault("dnsPolicy", "ClusterFirst")
            for container in pod.get("containers") or ():
                container.setdefault("imagePullPolicy", "IfNotPresent")
                container.setdefault("terminationMessagePath", "/dev/termination-log")
        elif kind == "Service":
            spec.setdefault("clusterIP", f"10.96.0.{len(self.objects) % 250 + 2}")
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or ():
                port.setdefault("protocol", "TCP")
        elif kind == "HTTPRoute":
            for rule in spec.get("rules") or ():
                rule.setdefault("matches", [{"path": {"type": "PathPrefix", "value": "/"}}])
                for ref in rule.get("backendRefs") or ():
                    ref.setdefault("group", "")
                    ref.setdefault("kind", "Service")
                    ref.setdefault("weight", 1)

    # -- what the operator's watches see --------------------------------------------
    def children_of(self, uid: str) -> dict:
        return {key: obj.slim() for key, obj in self.objects.items() if _controller_uid(obj.body) == uid}

    def neighbours(self) -> dict:
        return {key: obj.slim() for key, obj in self.objects.items() if key[0] in CHILD_KIND_NAMES}

    def pod_bodies(self, model: str | None = None) -> list[dict]:
        return [self.pod_body(p) for p in self.pods.values() if model is None or p.labels.get(NAME) == model]

    def pod_summaries(self, model: str) -> tuple:
        """summarize_pod(pod_body(p)) of `model`'s pods, as the pod watch gives
        them. A pod's body changes only with its state (_pod_state) and when it
        was scheduled; everything else in it is fixed at creation, so the
        summary is kept until those change."""
        out = []
        for pod in self.pods.values():
            if pod.labels.get(NAME) != model:
                continue
            state = self._pod_state(pod)
            key = (pod.scheduled_at, state["scheduled"], state["ready"], state["restarts"],
                   state["last_terminated"], state["waiting"])
            kept = self._summaries.get(pod.name)
            if kept is None or kept[0] != key:
                kept = self._summaries[pod.name] = (key, summarize_pod(self.pod_body(pod)))
            out.append(kept[1])
        return tuple(out)

    # -- the node, pods and their behaviour -----------------------------------------
    def behave(self, version: str, behaviour: str) -> None:
        """Pods of `version` (annotation modeldeploy.io/model-version) behave so
        from now on, running ones included (restart counts are kept)."""
        previous = self.behaviours.get(version, (READY, self.now))[0]
        if previous == behaviour:
            return
        self.behaviours[version] = (behaviour, self.now)
        for pod in self.pods.values():
            if pod.version == version and pod.scheduled_at is not None:
                status = self._pod_state(pod)
                pod.restarts_base, pod.last_terminated = status["restarts"], status["last_terminated"]
                pod.behaviour, pod.behaviour_since = behaviour, self.now

    def _behaviour_of(self, version: str) -> str:
        return self.behaviours.get(version, (READY, self.now))[0]

    def _pod_state(self, pod: Pod) -> dict:
        """Readiness, restarts and the container state of a pod, now."""
        if pod.scheduled_at is None:
            return {"scheduled": False, "ready": False, "restarts": pod.restarts_base,
                    "last_terminated": pod.last_terminated, "waiting": None}
        t = (self.now - pod.behaviour_since).total_seconds()
        state = {"scheduled": True, "ready": False, "restarts": pod.restarts_base,
                 "last_terminated": pod.last_terminated, "waiting": None}
        if pod.behaviour in START_SECONDS:
            state["ready"] = t >= START_SECONDS[pod.behaviour]
        elif pod.behaviour == CRASH_LOOP:
            crashes = int(t // CRASH_PERIOD) + 1  # the first crash comes quickly
            state["restarts"] = pod.restarts_base + crashes
            state["last_terminated"] = pod.behaviour_since + timedelta(seconds=(crashes - 1) * CRASH_PERIOD)
            phase = t % CRASH_PERIOD
            if phase < 8:
                state["waiting"] = "CrashLoopBackOff"
            else:
                state["ready"] = phase >= 14  # Ready for a moment between crashes
        return state

    def pod_body(self, pod: Pod) -> dict:
        """The pod as the API server returns it (camelCase, real shape)."""
        s = self._pod_state(pod)
        meta = {"name": pod.name, "namespace": pod.namespace, "labels": dict(pod.labels),
                "annotations": dict(pod.annotations), "uid": f"pod-{pod.name}",
                "creationTimestamp": fmt(pod.created),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "controller": True,
                                     "name": f"{pod.deployment}-{pod.rs_hash}", "uid": f"rs-{pod.rs_hash}"}]}
        if not s["scheduled"]:
            return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                "message": "0/1 nodes are available: 1 Too many pods."}]}}
        ready = "True" if s["ready"] else "False"
        if s["waiting"]:
            state = {"waiting": {"reason": s["waiting"],
                                 "message": f"back-off 40s restarting failed container=model-server pod={pod.name}"}}
        else:
            state = {"running": {"startedAt": fmt(s["last_terminated"] or pod.scheduled_at)}}
        # With a startup probe the kubelet counts a container started only
        # once the probe passes (the model loaded): until then it is loading.
        started = s["ready"] if pod.startup_probe else not s["waiting"]
        container = {"name": "model-server", "ready": s["ready"], "restartCount": s["restarts"],
                     "started": started, "image": "model-server", "state": state, "lastState": {}}
        if s["last_terminated"] is not None:
            container["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error",
                                                     "finishedAt": fmt(s["last_terminated"])}}
        spec = {"containers": [{"name": "model-server", **({"startupProbe": pod.startup_probe}
                                                           if pod.startup_probe else {})}]}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": fmt(pod.scheduled_at)},
                           {"type": "Initialized", "status": "True"},
                           {"type": "ContainersReady", "status": ready}, {"type": "Ready", "status": ready}],
            "initContainerStatuses": [{"name": "storage-initializer", "ready": True, "restartCount": 0,
                                       "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}],
            "containerStatuses": [container]}}

    def ready(self, pod: Pod) -> bool:
        return self._pod_state(pod)["ready"]

    # -- controllers ---------------------------------------------------------------
    def sync(self) -> None:
        """One round of the controllers that act within a second: the Deployment
        and ReplicaSet controllers, the scheduler. (The HPA has its own cycle.)"""
        for _ in range(3):  # Deployment -> ReplicaSet -> pods settle in a few rounds
            for (kind, name), obj in list(self.objects.items()):
                if kind == "Deployment" and (kind, name) in self.objects:
                    self._sync_deployment(name, obj)
            self._schedule()
        for (kind, name), obj in list(self.objects.items()):
            if kind == "Deployment":
                self._deployment_status(name, obj)
            elif kind == "Job":
                self._job_deadline(obj)

    # -- smoke-check Jobs (the Job controller) ------------------------------------------
    def _job_deadline(self, obj: Obj) -> None:
        """A Job running past its activeDeadlineSeconds fails (DeadlineExceeded)."""
        deadline = (obj.body.get("spec") or {}).get("activeDeadlineSeconds")
        if deadline is None or self.job_outcome(obj.body) is not None:
            return
        if (self.now - parse_time(obj.body["metadata"]["creationTimestamp"])).total_seconds() > deadline:
            self._end_job(obj, "Failed", "DeadlineExceeded")

    @staticmethod
    def job_outcome(body: dict) -> str | None:
        for cond in (body.get("status") or {}).get("conditions") or ():
            if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
                return cond["type"] if cond["type"] == "Complete" else cond.get("reason") or "Failed"
        return None

    def finish_job(self, outcome: str) -> dict | None:
        """The newest unfinished Job ends: Complete, or Failed with reason
        `outcome` (BackoffLimitExceeded: its pod failed; DeadlineExceeded).
        Returns the Job as it ended, or None when none was running."""
        running = [obj for (kind, _), obj in self.objects.items()
                   if kind == "Job" and self.job_outcome(obj.body) is None]
        if not running:
            return None
        obj = max(running, key=lambda o: (o.body["metadata"]["creationTimestamp"], o.body["metadata"]["name"]))
        if outcome == "Complete":
            self._end_job(obj, "Complete", "")
        else:
            self._end_job(obj, "Failed", outcome)
        return obj.view()

    def _end_job(self, obj: Obj, kind: str, reason: str) -> None:
        before = _clone(obj.body)
        obj.body["status"] = {"succeeded" if kind == "Complete" else "failed": 1, "startTime": obj.body["metadata"]
                              ["creationTimestamp"], "conditions": [{"type": kind, "status": "True", "reason": reason,
                                                                     "message": ""}]}
        self._changed(obj, before)

    def hpa_sync(self) -> None:
        """The HPA controller: scale each target to what the load wants, within
        min/max. KEDA (a ScaledObject) does the same, and scales to and from 0
        too: `hpa_wants` 0 is no request at all."""
        for (kind, name), obj in list(self.objects.items()):
            if kind not in ("HorizontalPodAutoscaler", "ScaledObject"):
                continue
            spec = obj.body["spec"]
            if kind == "ScaledObject":  # KEDA's names for the bounds
                spec = {**spec, "minReplicas": spec["minReplicaCount"], "maxReplicas": spec["maxReplicaCount"]}
            if spec["scaleTargetRef"]["kind"] == "ModelDeployment":
                self._scale_model(spec)
                continue
            target = self.objects.get(("Deployment", spec["scaleTargetRef"]["name"]))
            if target is None or (kind != "ScaledObject" and target.body["spec"].get("replicas", 1) == 0):
                continue  # an HPA's scaling is disabled at 0
            want = min(max(self.hpa_wants, spec.get("minReplicas", 1)), spec["maxReplicas"])
            if target.body["spec"].get("replicas") != want:
                self.update_scale("Deployment", spec["scaleTargetRef"]["name"], want)

    def _scale_model(self, hpa: dict) -> None:
        """The HPA on a ModelDeployment (capacity mode Replace): PUT its scale
        subresource, i.e. spec.autoscaling.replicas, the total of both roles."""
        md = self.models.get(hpa["scaleTargetRef"]["name"])
        autoscaling = (md or {}).get("spec", {}).get("autoscaling")
        if not autoscaling:
            return
        if not autoscaling.get("replicas"):
            return  # a target at 0: the HPA disables itself (ScalingDisabled)
        want = min(max(self.hpa_wants, hpa.get("minReplicas", 1)), hpa["maxReplicas"])
        if autoscaling.get("replicas") != want:
            spec = _clone(md["spec"])
            spec["autoscaling"]["replicas"] = want
            md["spec"] = spec
            md["metadata"]["generation"] += 1
            md["metadata"]["resourceVersion"] = self._next_rv()

    def _pods_of(self, deployment: str, rs_hash: str | None = None) -> list[Pod]:
        return [p for p in self.pods.values() if p.deployment == deployment and (rs_hash is None or p.rs_hash == rs_hash)]

    def _sync_deployment(self, name: str, obj: Obj) -> None:
        spec = obj.body["spec"]
        desired = spec.get("replicas", 1)
        template = spec["template"]
        if obj._template_hash is None or obj._template_hash[0] != obj.version:
            digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
            obj._template_hash = (obj.version, digest)
        h = obj._template_hash[1]
        sets = self.replicasets.setdefault(name, [])
        new = next((rs for rs in sets if rs.hash == h), None)
        if new is None:
            new = ReplicaSet(h, _clone(template))
            sets.append(new)
            self.progress_at[name] = self.now
        else:
            sets.remove(new)
            sets.append(new)  # the newest last
        old = [rs for rs in sets if rs is not new]
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            for rs in old:
                rs.replicas = 0
            if not any(self._pods_of(name, rs.hash) for rs in old):
                new.replicas = desired
        elif not any(rs.replicas for rs in old):
            new.replicas = desired
        else:
            rolling = strategy.get("rollingUpdate") or {}
            surge = _resolve(rolling.get("maxSurge", "25%"), desired, up=True)
            unavailable = _resolve(rolling.get("maxUnavailable", "25%"), desired, up=False)
            if surge == 0 and unavailable == 0:
                unavailable = 1
            total = sum(rs.replicas for rs in sets)
            if total < desired + surge and new.replicas < desired:
                new.replicas = min(desired, new.replicas + desired + surge - total)
            elif new.replicas > desired:
                new.replicas = desired
            total = sum(rs.replicas for rs in sets)
            min_available = desired - unavailable
            new_unavailable = sum(1 for p in self._pods_of(name, new.hash) if not self.ready(p))
            budget = total - min_available - new_unavailable
            # Unhealthy old pods go first, then ready ones while enough stay available.
            for rs in old:
                unready = sum(1 for p in self._pods_of(name, rs.hash) if not self.ready(p))
                cut = max(0, min(unready, budget, rs.replicas))
                rs.replicas -= cut
                budget -= cut
            ready_all = sum(1 for rs in sets for p in self._pods_of(name, rs.hash)[:rs.replicas] if self.ready(p))
            can = max(0, ready_all - min_available)
            for rs in old:
                cut = max(0, min(can, rs.replicas, budget))
                rs.replicas -= cut
                can -= cut
                budget -= cut
        for rs in sets:
            self._sync_replicaset(name, rs, obj)
        self.replicasets[name] = [rs for rs in sets if rs is new or rs.replicas or self._pods_of(name, rs.hash)]

    def _sync_replicaset(self, deployment: str, rs: ReplicaSet, owner: Obj) -> None:
        pods = self._pods_of(deployment, rs.hash)
        if len(pods) > rs.replicas:
            # Delete Pending first, then not ready, then the newest.
            ranked = sorted(pods, key=lambda p: (p.scheduled_at is not None, self.ready(p), -p.created.timestamp()))
            for pod in ranked[:len(pods) - rs.replicas]:
                del self.pods[pod.name]
            self.progress_at.setdefault(deployment, self.now)
        for _ in range(rs.replicas - len(pods)):
            self.pod_serial += 1
            meta = rs.template.get("metadata") or {}
            labels = {**(meta.get("labels") or {}), "pod-template-hash": rs.hash}
            server = next((c for c in (rs.template.get("spec") or {}).get("containers") or ()
                           if c.get("name") == "model-server"), {})
            pod = Pod(name=f"{deployment}-{rs.hash[:6]}-{self.pod_serial:05d}", namespace=self.namespace,
                      labels=labels, annotations=dict(meta.get("annotations") or {}), deployment=deployment,
                      rs_hash=rs.hash, created=self.now, startup_probe=server.get("startupProbe"))
            self.pods[pod.name] = pod
            self.progress_at[deployment] = self.now

    def _schedule(self) -> None:
        running = sum(1 for p in self.pods.values() if p.scheduled_at is not None)
        for pod in sorted(self.pods.values(), key=lambda p: p.created):
            if pod.scheduled_at is None and running < self.capacity:
                pod.scheduled_at = pod.behaviour_since = self.now
                pod.behaviour = self._behaviour_of(pod.version)
                running += 1

    def _deployment_status(self, name: str, obj: Obj) -> None:
        spec, meta = obj.body["spec"], obj.body["metadata"]
        desired = spec.get("replicas", 1)
        sets = self.replicasets.get(name, [])
        new = sets[-1] if sets else None
        pods = self._pods_of(name)
        updated = self._pods_of(name, new.hash) if new else []
        ready = sum(1 for p in pods if self.ready(p))
        new_ready = sum(1 for p in updated if self.ready(p))
        key = (name, "new-ready")
        if self.progress_at.get(key) != new_ready:  # progress: more new pods ready
            self.progress_at[key] = new_ready
            self.progress_at[name] = self.now
        complete = len(updated) == desired == len(pods) and new_ready == desired
        deadline = spec.get("progressDeadlineSeconds", 600)
        previous = {c["type"]: c for c in (obj.body.get("status") or {}).get("conditions", [])}
        if complete:
            progressing = ("True", "NewReplicaSetAvailable", f'ReplicaSet "{name}-{new.hash}" has successfully progressed.')
        elif (self.now - self.progress_at.get(name, self.now)).total_seconds() > deadline:
            progressing = ("False", "ProgressDeadlineExceeded", f'ReplicaSet "{name}-{new.hash}" has timed out progressing.')
        else:
            progressing = ("True", "ReplicaSetUpdated", f'ReplicaSet "{name}-{new.hash}" is progressing.')
        available = "True" if ready >= desired - _resolve(
            ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", 0), desired, up=False) else "False"

        def cond(type_, status, reason, message):
            old = previous.get(type_)
            since = old["lastTransitionTime"] if old and old["status"] == status else fmt(self.now)
            return {"type": type_, "status": status, "reason": reason, "message": message,
                    "lastTransitionTime": since, "lastUpdateTime": since}

        status = {"observedGeneration": meta.get("generation", 1), "replicas": len(pods),
                  "updatedReplicas": len(updated), "readyReplicas": ready, "availableReplicas": ready,
                  "unavailableReplicas": max(0, desired - ready),
                  "conditions": [cond("Available", available, "MinimumReplicasAvailable" if available == "True"
                                      else "MinimumReplicasUnavailable", "Deployment availability."),
                                 cond("Progressing", *progressing)]}
        status = {k: v for k, v in status.items() if v not in (0, None)}  # omitempty
        if obj.body.get("status") != status:
            obj.body["status"] = status
            obj.version += 1
            meta["resourceVersion"] = self._next_rv()

    # -- time -------------------------------------------------------------------------
    def later(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    # -- reading back (for invariants) --------------------------------------------------
    def _route_rules(self, name: str) -> tuple[str, list[dict], list[dict]] | None:
        """(kind, rules that match on headers, the others) of the route
        `name`, each rule as {backends: {service: weight}, mirror: percent},
        read as a gateway would (a rule's header matches, not its order)."""
        route = self.objects.get(("HTTPRoute", name))
        if route is not None:
            header, plain = [], []
            for rule in route.body["spec"].get("rules") or [{}]:
                mirror = next((f["requestMirror"] for f in rule.get("filters") or ()
                               if f.get("type") == "RequestMirror"), None)
                read = {"backends": {ref.get("name"): ref.get("weight", 1) for ref in rule.get("backendRefs") or ()},
                        "mirror": 0 if mirror is None else mirror.get("percent", 100),
                        "mirror_to": None if mirror is None else mirror["backendRef"]["name"]}
                (header if any(m.get("headers") for m in rule.get("matches") or ()) else plain).append(read)
            return "HTTPRoute", header, plain
        route = self.objects.get(("VirtualService", name))
        if route is not None:
            header, plain = [], []
            for http in route.body["spec"].get("http") or [{}]:
                found: dict[str, float] = {}
                for dest in http.get("route") or ():
                    host = dest["destination"]["host"].split(".")[0]
                    found[host] = found.get(host, 0) + dest.get("weight", 100)
                mirror = http.get("mirror")
                read = {"backends": found,
                        "mirror": 0 if mirror is None else (http.get("mirrorPercentage") or {}).get("value", 100),
                        "mirror_to": None if mirror is None else mirror["host"].split(".")[0]}
                (header if http.get("match") else plain).append(read)
            return "VirtualService", header, plain
        return None

    def route_weights(self, name: str) -> tuple[str, tuple[float, float]] | None:
        """(kind, (stable weight, canary weight)) of the route `name`, as it
        is stored: its rule for requests without the canary headers."""
        found = self._route_rules(name)
        if found is None:
            return None
        kind, _, plain = found
        backends = plain[0]["backends"] if plain else {}
        return kind, (backends.get(f"{name}-stable", 0), backends.get(f"{name}-canary", 0))

    def route_mirror(self, name: str) -> tuple[int, str | None]:
        """(percent of requests the route copies, to which Service)."""
        found = self._route_rules(name)
        if found is None or not found[2]:
            return 0, None
        return found[2][0]["mirror"], found[2][0]["mirror_to"]

    def route_header_backend(self, name: str) -> str | None:
        """Where the route sends requests with the canary headers: the
        Service with weight in its header rule (None: no header rule)."""
        found = self._route_rules(name)
        if found is None or not found[1]:
            return None
        weighted = [service for service, weight in found[1][0]["backends"].items() if weight]
        return weighted[0] if len(weighted) == 1 else ",".join(sorted(weighted))

    def selected_pods(self, service: str) -> list[Pod]:
        """Pods a Service's selector picks (every pod the Service would send to if ready)."""
        svc = self.objects.get(("Service", service))
        if svc is None:
            return []
        selector = svc.body["spec"].get("selector") or {}
        return [p for p in self.pods.values() if selector and all(p.labels.get(k) == v for k, v in selector.items())]


def _resolve(value: Any, total: int, *, up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        share = total * int(value[:-1]) / 100
        return math.ceil(share) if up else math.floor(share)
    return int(value or 0)


def _controller_uid(body: dict) -> str | None:
    for ref in (body.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("uid")
    return None


# --- the operator's loop ------------------------------------------------------------


@dataclass
class PassResult:
    completed: bool  # the status write (if any) landed and nothing after it failed
    status_written: bool = False
    refused: str | None = None
    error: ApiError | None = None
    plan: Any = None
    world: World | None = None


@dataclass
class Snapshot:
    children: dict
    neighbours: dict
    pods: tuple
    written: int = 0  # how many of the operator's own writes it already holds (Operator.written)


class Operator:
    """controller.Controller._reconcile against a FakeCluster, synchronously."""

    def __init__(self, cluster: FakeCluster, table=None) -> None:
        self.cluster = cluster
        self.table = table or load_runtime_table()
        # The children this operator applied or deleted, in order: the real
        # controller puts its own apply responses into its watch cache (and
        # drops what it deletes), so even a lagging cache holds them.
        self.written: list[tuple[str, str]] = []

    def snapshot(self, name: str) -> Snapshot:
        uid = self.cluster.models[name]["metadata"]["uid"]
        return Snapshot(self.cluster.children_of(uid), self.cluster.neighbours(), self.cluster.pod_summaries(name),
                        len(self.written))

    def _with_own_writes(self, name: str, cache: Snapshot) -> Snapshot:
        """A lagging watch cache as the controller keeps it: an earlier
        snapshot, plus every child this operator wrote since (as its write
        left it or later) and minus what it deleted. Pods and everything
        others changed stay as they were."""
        if cache.written >= len(self.written):
            return cache
        uid = self.cluster.models[name]["metadata"]["uid"]
        children, neighbours = dict(cache.children), dict(cache.neighbours)
        for key in set(self.written[cache.written:]):
            obj = self.cluster.objects.get(key)
            if obj is None:
                children.pop(key, None)
                neighbours.pop(key, None)
                continue
            slim = obj.slim()
            neighbours[key] = slim
            if _controller_uid(obj.body) == uid:
                children[key] = slim
            else:
                children.pop(key, None)
        return Snapshot(children, neighbours, cache.pods, len(self.written))

    def observe(self, name: str, cache: Snapshot | None = None) -> World:
        cache = self.snapshot(name) if cache is None else self._with_own_writes(name, cache)
        # The model as the watch cache holds it at this moment. The fake replaces
        # spec and status wholesale on every write and edits only metadata in
        # place (generation, resourceVersion, annotations), so copying those is
        # a snapshot (plan() never mutates its world).
        md = self.cluster.models[name]
        meta = md["metadata"]
        model = {**md, "metadata": {**meta, "annotations": dict(meta.get("annotations") or {})}}
        return World(model=model, children=cache.children, neighbours=cache.neighbours, pods=cache.pods,
                     now=self.cluster.now, table=self.table)

    def reconcile(self, name: str, *, cache: Snapshot | None = None) -> PassResult:
        """One pass; `cache`: the watch cache as it was (a restarted or lagging operator).
        Controller._reconcile with this world: the same steps, the controller's
        own write and report methods."""
        cluster = self.cluster
        world = self.observe(name, cache)
        step = plan(world)
        if step.queries is not None:
            world = replace(world, analysis=cluster.prometheus.run(step.queries))
            step = plan(world)
        controller = _controller(cluster, world.model["metadata"]["uid"], self.written)
        refused = None
        try:
            _drive(controller._write_children(step))
        except ApiException as exc:
            refused = _refusal(exc)
            if refused is None:
                return PassResult(completed=False, error=_api_error(exc), plan=step, world=world)
            # As the controller: plan again from the cache as the writes that
            # landed left it.
            seen = self.observe(name, cache)
            step = plan(replace(world, children=seen.children, neighbours=seen.neighbours, pods=seen.pods,
                                refused=refused))
        try:
            recorded = _drive(controller._report(world.model, step))
        except ApiException as exc:
            return PassResult(completed=False, error=_api_error(exc), refused=refused, plan=step, world=world)
        if not recorded:  # the status write refused: 409, the model changed since the pass read it
            return PassResult(completed=False, error=ApiError(409, "the object has been modified"), refused=refused,
                              plan=step, world=world)
        return PassResult(completed=True, status_written=step.status is not None, refused=refused, plan=step,
                          world=world)


# --- the controller's write and report code, against the fake -----------------------


class _FakeKube:
    """The part of kube.writing.Kube that Controller._write_children and
    Controller._report call, served by a FakeCluster. Errors come back as the
    kubernetes client raises them (ApiException with a JSON Status body)."""

    def __init__(self, cluster: FakeCluster, actor: str, written: list) -> None:
        self.cluster = cluster
        self.actor = actor  # the uid of the ModelDeployment whose pass writes (invariant 8)
        self.written = written  # Operator.written

    async def scale(self, namespace: str, name: str, replicas: int) -> None:
        md = self.cluster.models[name]
        spec = _clone(md["spec"])
        spec["autoscaling"]["replicas"] = replicas
        md["spec"] = spec
        md["metadata"]["generation"] += 1
        md["metadata"]["resourceVersion"] = self.cluster._next_rv()

    async def apply(self, manifest: dict, *, field_manager: str = FIELD_MANAGER, force: bool = True) -> dict:
        # The response only feeds the watch cache: the fake's lagging caches
        # take the operator's own writes from `written` instead.
        with _as_api_exception():
            response = self.cluster.apply(manifest, field_manager, actor=self.actor, force=force, respond=False)
        self.written.append((manifest["kind"], manifest["metadata"]["name"]))
        return response

    async def apply_status(self, namespace: str, name: str, status: dict, *,
                           resource_version: str | None = None) -> dict:
        with _as_api_exception():
            current = self.cluster.models[name]["metadata"]["resourceVersion"]
            if resource_version is not None and resource_version != current:
                raise ApiError(409, "Operation cannot be fulfilled: the object has been modified")
            return self.cluster.write_status(name, status, respond=False)

    async def get(self, path: str, *, kind: str) -> dict:
        """A ModelDeployment read back (after a 409 on its status write)."""
        return _clone(self.cluster.models[path.rsplit("/", 1)[-1]])

    async def patch_metadata(self, res, namespace: str, name: str, patch: dict) -> dict:
        for key, value in (patch.get("annotations") or {}).items():
            self.cluster.annotate(name, key, value)
        return self.cluster.models[name]

    async def delete(self, res, namespace: str, name: str) -> None:
        try:
            self.cluster.delete(res.kind, name, actor=self.actor)
            self.written.append((res.kind, name))
        except ApiError as exc:
            if exc.status != 404:  # already gone is what we wanted (as Kube.delete)
                raise _api_exception(exc) from None

    async def event(self, involved: dict, *, type: str, reason: str, message: str) -> None:
        self.cluster.events.append((involved["metadata"]["name"], type, reason, message))


class _FakeCache:
    """The watch cache as far as the write path touches it: the fake's
    observe() reads the cluster itself, so there is nothing to keep."""

    def put_child(self, body: dict) -> None:
        pass

    def drop_child(self, body: dict) -> None:
        pass

    def put_model(self, body: dict) -> None:
        pass

    def neighbours_of(self, namespace: str | None) -> dict:
        return {}


def _controller(cluster: FakeCluster, actor: str, written: list) -> Controller:
    controller = Controller.__new__(Controller)  # no settings, client, queue or tasks: only the write path
    controller.kube = _FakeKube(cluster, actor, written)
    controller.cache = _FakeCache()
    return controller


def _drive(coroutine):
    """Run a coroutine whose awaits all complete at once (the fake answers synchronously)."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value
    coroutine.close()
    raise RuntimeError("the controller awaited something the fake API server does not answer at once")


class _as_api_exception:
    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if isinstance(exc, ApiError):
            raise _api_exception(exc) from None
        return False


def _api_exception(exc: ApiError) -> ApiException:
    error = ApiException(status=exc.status, reason=exc.message)
    error.body = json.dumps({"kind": "Status", "status": "Failure", "message": exc.message, "code": exc.status})
    return error


def _api_error(exc: ApiException) -> ApiError:
    try:
        message = json.loads(exc.body or "{}").get("message") or exc.reason
    except ValueError:
        message = exc.reason
    return ApiError(exc.status, message)
