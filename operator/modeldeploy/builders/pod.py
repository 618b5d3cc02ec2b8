"""The pod template: storage initializer + model server, Pod Security `restricted`."""

import copy
import math
from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..runtimes import ResolvedRuntime
from .labels import MODEL_VERSION, PREFIX, pod_labels, role_labels, selector_labels
from .naming import Role
from .patch import PatchError, strategic_merge
from .security import restricted_violations

SERVER_CONTAINER = "model-server"
INITIALIZER_CONTAINER = "storage-initializer"
MODEL_VOLUME = "model-dir"
# spec.model.cache: the user's claim, in the storage initializer only, which
# finds it through the variable (hack/images/storage-initializer).
CACHE_VOLUME = "model-cache"
CACHE_MOUNT_PATH = "/mnt/model-cache"
CACHE_DIR_ENV = "MODELDEPLOY_CACHE_DIR"
PORT_NAME = "http"
METRICS_PORT_NAME = "metrics"  # manifests/monitoring/podmonitor.yaml scrapes it

# Enough for the initializer to stream a download; the model lands on disk, not in memory.
INITIALIZER_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "100Mi"},
    "limits": {"cpu": "1", "memory": "1Gi"},
}



def _container_security() -> dict[str, Any]:
    """Container-level half of Pod Security "restricted" (pod-level: _pod_security)."""
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def build_pod_template(
    spec: ModelDeploymentSpec, runtime: ResolvedRuntime, *, name: str, role: Role, revision: str
) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {}
    if spec.service_account_name:
        pod_spec["serviceAccountName"] = spec.service_account_name
    pod_spec["securityContext"] = _pod_security(runtime)
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = copy.deepcopy(spec.tolerations)
    _scheduling(pod_spec, spec, runtime, name, role)
    if spec.model.pvc_claim is None:
        pod_spec["initContainers"] = [_storage_initializer(spec, runtime)]
    pod_spec["containers"] = [_model_server(spec, runtime, name)]
    pod_spec["volumes"] = [_model_volume(spec)]
    if spec.model.cache is not None:
        pod_spec["volumes"].append({"name": CACHE_VOLUME,
                                    "persistentVolumeClaim": {"claimName": spec.model.cache.claim_name}})

    template = {
        "metadata": {
            "labels": pod_labels(spec.pod_metadata.labels, name, role, revision),
            "annotations": {**spec.pod_metadata.annotations, MODEL_VERSION: spec.model.version},
        },
        "spec": pod_spec,
    }
    if spec.pod_template_patch:
        template = strategic_merge(template, spec.pod_template_patch)
    return template


def pod_template_problems(spec: ModelDeploymentSpec, runtime: ResolvedRuntime, *, name: str) -> list[str]:
    """Why the pods `spec` asks for cannot be run as asked (a
    podTemplatePatch that breaks what the operator guarantees); empty when
    they can. The message of each names the field."""
    problems = []
    initializer = runtime.storage_initializer
    if spec.model.cache is not None and not initializer.cache:
        # Asked for and impossible: said, not silently ignored (every pod would download).
        problems.append(f"spec.model.cache: the operator's storage initializer {initializer.image} does not use a "
                        "model cache (its runtime table entry has no `cache: true`), so every pod would still "
                        "download the model; remove spec.model.cache or run the operator with this project's "
                        "storage initializer (README: A shared model cache)")
    if not spec.pod_template_patch:
        return problems
    try:
        template = build_pod_template(spec, runtime, name=name, role=Role.CANARY, revision="check")
    except PatchError as error:
        return [*problems, f"spec.podTemplatePatch: {error}"]
    problems += [f"spec.podTemplatePatch breaks Pod Security restricted: {v}"
                 for v in restricted_violations(template.get("spec") or {})]
    ours = {k: v for k, v in role_labels(name, Role.CANARY, "check").items() if k.startswith(PREFIX)}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in ours.items()):
        problems.append("spec.podTemplatePatch may not change the operator's labels (modeldeploy.io/*): the "
                        "Deployments select their pods by them")
    if SERVER_CONTAINER not in {c.get("name") for c in (template.get("spec") or {}).get("containers") or ()}:
        problems.append(f"spec.podTemplatePatch may not remove the {SERVER_CONTAINER} container")
    return problems


def _scheduling(pod_spec: dict[str, Any], spec: ModelDeploymentSpec, runtime: ResolvedRuntime, name: str,
                role: Role) -> None:
    """Where the pods may run (issue 14): the spec's fields as a pod spec
    has them, and by default each role's replicas spread across nodes."""
    if spec.affinity:
        pod_spec["affinity"] = copy.deepcopy(spec.affinity)
    if spec.topology_spread_constraints:
        pod_spec["topologySpreadConstraints"] = copy.deepcopy(spec.topology_spread_constraints)
    elif spec.topology_spread_constraints is None and runtime.spread_replicas:
        # Built fresh for this pod spec: no copy (deepcopy was 5% of the
        # operator's CPU in a 1,000-model rollout, profiled with py-spy).
        pod_spec["topologySpreadConstraints"] = [default_spread(name, role)]
    if spec.priority_class_name:
        pod_spec["priorityClassName"] = spec.priority_class_name
    if spec.runtime_class_name:
        pod_spec["runtimeClassName"] = spec.runtime_class_name
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": secret.name} for secret in spec.image_pull_secrets]


def default_spread(name: str, role: Role) -> dict[str, Any]:
    """One role's replicas across nodes, as evenly as the scheduler can
    (ScheduleAnyway: a preference, so a single node still runs them all; one
    replica has nothing to spread)."""
    return {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector_labels(name, role)}}


def _pod_security(runtime: ResolvedRuntime) -> dict[str, Any]:
    # A numeric runAsUser lets runAsNonRoot be verified even for images whose
    # USER is a name; seccomp RuntimeDefault is required by "restricted".
    return {
        "runAsNonRoot": True,
        "runAsUser": runtime.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _storage_initializer(spec: ModelDeploymentSpec, runtime: ResolvedRuntime) -> dict[str, Any]:
    initializer = runtime.storage_initializer
    container: dict[str, Any] = {
        "name": INITIALIZER_CONTAINER,
        "image": initializer.image,
        "args": [spec.model.uri, runtime.model_mount_path],
        "resources": copy.deepcopy(INITIALIZER_RESOURCES),
        "volumeMounts": [{"name": MODEL_VOLUME, "mountPath": runtime.model_mount_path}],
        "securityContext": {**_container_security(), "runAsUser": initializer.run_as_user},
    }
    if spec.model.cache is not None:
        # Only here: the server, which runs the user's code, gets a copy of
        # its one model in its own volume, never the shared, writable cache.
        container["env"] = [{"name": CACHE_DIR_ENV, "value": CACHE_MOUNT_PATH}]
        container["volumeMounts"].append({"name": CACHE_VOLUME, "mountPath": CACHE_MOUNT_PATH})
    if spec.model.credentials is not None:
        # The user's Secret reaches this container only: the model server, which
        # runs the user's code and answers requests, never sees the keys.
        container["envFrom"] = [{"secretRef": {"name": spec.model.credentials.secret_name}}]
    return container


def _model_server(spec: ModelDeploymentSpec, runtime: ResolvedRuntime, name: str) -> dict[str, Any]:
    container: dict[str, Any] = {"name": SERVER_CONTAINER, "image": runtime.image}
    if runtime.command:
        container["command"] = list(runtime.command)
    if runtime.args:
        container["args"] = list(runtime.args)
    container["ports"] = [{"name": PORT_NAME, "containerPort": runtime.port, "protocol": "TCP"}]
    if runtime.metrics_port and runtime.metrics_port != runtime.port:
        container["ports"].append({"name": METRICS_PORT_NAME, "containerPort": runtime.metrics_port, "protocol": "TCP"})
    container["env"] = _env(spec, runtime, name)
    container["readinessProbe"] = _readiness_probe(runtime, {v["name"]: v["value"] for v in _our_env(spec, runtime, name)})
    budget = load_budget(spec, runtime)
    if budget:
        container["startupProbe"] = startup_probe(container["readinessProbe"], budget)
    if runtime.drain_seconds:
        # A terminating pod keeps answering while kube-proxy and the routes
        # drop its endpoint; only then does the server get SIGTERM (MLServer
        # fails requests from SIGTERM on). The kubelet's own sleep: no shell
        # needed in the image.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": runtime.drain_seconds}}}
    resources = spec.resources.model_dump(mode="json", exclude_defaults=True)
    if resources:
        container["resources"] = resources
    container["volumeMounts"] = [_model_mount(spec, runtime)]
    container["securityContext"] = _container_security()
    return container


def _our_env(spec: ModelDeploymentSpec, runtime: ResolvedRuntime, name: str) -> list[dict[str, str]]:
    return [
        {"name": "MODELDEPLOY_NAME", "value": name},
        {"name": "MODELDEPLOY_MODEL_VERSION", "value": spec.model.version},
        {"name": "MODELDEPLOY_MODEL_DIR", "value": runtime.model_mount_path},
    ]


def _env(spec: ModelDeploymentSpec, runtime: ResolvedRuntime, name: str) -> list[dict[str, Any]]:
    # Ours come first so runtime entries and users can refer to them as $(VAR).
    ours = _our_env(spec, runtime, name)
    reserved = {var["name"] for var in ours}
    return ours + [copy.deepcopy(var) for var in runtime.env if var["name"] not in reserved]


def _readiness_probe(runtime: ResolvedRuntime, ours: dict[str, str]) -> dict[str, Any]:
    """`ours`: the MODELDEPLOY_* variables. The kubelet expands no $(VAR) in a
    probe, so the builder does, for ours: a path like
    /v2/models/$(MODELDEPLOY_NAME)/ready asks about this model, not just the
    server (MLServer's /v2/health/ready says ready with no model loaded)."""
    probe = runtime.readiness
    if probe is None:
        # A custom image without a known health path: the best we can check is the port.
        return {"tcpSocket": {"port": PORT_NAME}, "periodSeconds": 5, "failureThreshold": 3}
    path = probe.path
    for var, value in ours.items():
        path = path.replace(f"$({var})", value)
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "initialDelaySeconds": probe.initial_delay_seconds,
        "periodSeconds": probe.period_seconds,
        "timeoutSeconds": probe.timeout_seconds,
        "failureThreshold": probe.failure_threshold,
    }


def load_budget(spec: ModelDeploymentSpec, runtime: ResolvedRuntime) -> int:
    """Seconds the model may take to load: the spec's loadTimeout, else the runtime's; 0 for none."""
    return spec.model.load_timeout_seconds or runtime.load_timeout_seconds


def startup_probe(readiness: dict[str, Any], budget: int) -> dict[str, Any]:
    """The readiness check, given `budget` seconds before the kubelet gives
    up on the container (and restarts it). Until it passes, readiness and
    liveness wait: a large model is never killed for loading slowly, and
    one that hangs is not waited for forever. periodSeconds divides the
    budget exactly, so the status can read the budget back off the pod
    (status.observed: periodSeconds x failureThreshold)."""
    period = math.gcd(budget, 10)
    probe = {key: copy.deepcopy(value) for key, value in readiness.items()
             if key in ("httpGet", "tcpSocket", "timeoutSeconds")}
    return {**probe, "periodSeconds": period, "failureThreshold": budget // period}


def _model_volume(spec: ModelDeploymentSpec) -> dict[str, Any]:
    if spec.model.pvc_claim is not None:
        return {
            "name": MODEL_VOLUME,
            "persistentVolumeClaim": {"claimName": spec.model.pvc_claim, "readOnly": True},
        }
    return {"name": MODEL_VOLUME, "emptyDir": {}}


def _model_mount(spec: ModelDeploymentSpec, runtime: ResolvedRuntime) -> dict[str, Any]:
    # The server only reads the model: mount it read-only in every case.
    mount: dict[str, Any] = {"name": MODEL_VOLUME, "mountPath": runtime.model_mount_path, "readOnly": True}
    if spec.model.pvc_claim is not None and spec.model.pvc_path:
        mount["subPath"] = spec.model.pvc_path
    return mount
