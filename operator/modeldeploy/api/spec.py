"""`spec` of a ModelDeployment: what to serve, with what, and how many."""

from typing import Any

from pydantic.json_schema import SkipJsonSchema
from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from .autoscaling import (KEDA_NEEDS_TRIGGERS, KEDA_ONLY, METRICS_ARE_HPA, ZERO_NEEDS_KEDA, ZERO_NEEDS_SURGE,
                          EngineName, KedaSpec, MetricSpec)
from .base import SpecModel
from .durations import bounded_duration, parse_duration
from .formats import DNS1123_SUBDOMAIN_PATTERN, DNS1123Label, DNS1123Subdomain, ModelUri, Quantity
from .problems import FieldProblem
from .registry import REGISTRY_URI_MESSAGE, REGISTRY_URI_PATTERN, RegistryRecord, is_registry_uri, parse_registry_uri
from .rollout import RolloutSpec
from .traffic import TrafficSpec

MAX_REPLICAS = 1000
MAX_LIST_ITEMS = 64
MAX_ARG_LENGTH = 4096

# The operator sets MODELDEPLOY_NAME, MODELDEPLOY_MODEL_VERSION, MODELDEPLOY_MODEL_DIR.
RESERVED_ENV_PREFIX = "MODELDEPLOY_"

# Validation context key: the formats the operator's runtime table knows.
KNOWN_FORMATS = "known_formats"


class ModelCredentials(SpecModel):
    """A Secret the user writes, in the ModelDeployment's namespace. The operator
    never reads it: the pods' storage initializer gets its keys as environment
    variables (envFrom), and the model server does not."""

    # The pattern alone would answer with the regular expression; this says it in words.
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": f"self.secretName.matches(r'{DNS1123_SUBDOMAIN_PATTERN}')",
                    "message": "spec.model.credentials.secretName must name a Secret: lowercase letters, digits, "
                    "'-' and '.', starting and ending with a letter or digit",
                }
            ]
        }
    }

    secret_name: DNS1123Subdomain = Field(
        description="Name of a Secret in the same namespace; each key becomes an environment variable of the "
        "storage initializer only (e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)."
    )


class ModelCache(SpecModel):
    """A claim the user provides (ReadWriteMany, so pods on every node share
    it) where the storage initializer keeps each downloaded model: every
    later pod, canary or rollback of the same URI copies it from there
    instead of downloading it again. Evicting old entries is the claim
    owner's business (README: A shared model cache)."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": f"self.claimName.matches(r'{DNS1123_SUBDOMAIN_PATTERN}')",
                    "message": "spec.model.cache.claimName must name a PersistentVolumeClaim: lowercase letters, "
                    "digits, '-' and '.', starting and ending with a letter or digit",
                }
            ]
        }
    }

    claim_name: DNS1123Subdomain = Field(
        description="Name of a PersistentVolumeClaim in the same namespace, writable by the storage initializer "
        "(mounted into it only; the model server gets its own copy of the model)."
    )


# From 10 seconds (a toy model) to 24 hours (a large model pulled over a slow link).
LoadTimeout = bounded_duration(10, 24 * 3600)

# How often an alias is re-read: not more than every 10 seconds, at least daily.
PollInterval = bounded_duration(10, 24 * 3600)


class RegistryOptions(SpecModel):
    """How a models:/ URI (an MLflow registry) is followed."""

    poll_interval: PollInterval | None = Field(
        None,
        description="For an alias (models:/<name>@<alias>): re-read it this often, e.g. 1m; when it has moved "
        "to another version, that version rolls out through a canary like any spec change. Left out: the alias "
        "is read once, when the URI is first seen, and later moves are not followed.",
    )


class ModelSource(SpecModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.credentials) || !self.uri.startsWith('pvc://')",
                    "message": "spec.model.credentials: a pvc:// model is mounted, not downloaded, "
                    "so it takes no credentials",
                },
                {
                    "rule": f"!self.uri.startsWith('models:') || self.uri.matches(r'{REGISTRY_URI_PATTERN}')",
                    "message": f"spec.model.uri: {REGISTRY_URI_MESSAGE}",
                },
                {
                    "rule": "!has(self.registry) || !has(self.registry.pollInterval) || "
                    "(self.uri.startsWith('models:/') && self.uri.contains('@'))",
                    "message": "spec.model.registry.pollInterval follows an alias: it needs a URI "
                    "models:/<name>@<alias> (a version number never moves)",
                },
                {
                    "rule": "!has(self.cache) || !self.uri.startsWith('pvc://')",
                    "message": "spec.model.cache: a pvc:// model is mounted, not downloaded, so it has nothing to cache",
                },
            ]
        }
    }

    uri: ModelUri = Field(
        description="Where the model lives: s3://, gs://, http(s)://, hf://, pvc://claim/path "
        "(the claim is mounted read-only), or an MLflow registry's models:/<name>/<version> or "
        "models:/<name>@<alias> (resolved by the operator to the version's artifact URI)."
    )
    version: str = Field(
        min_length=1, max_length=128, description="Free text recorded in the revision history, e.g. v7."
    )
    format: DNS1123Label | None = Field(
        None, description="Model format (sklearn, onnx, huggingface...); picks the serving runtime."
    )
    credentials: ModelCredentials | None = Field(
        None, description="Where the storage initializer finds the keys to download the model, if it needs any."
    )
    load_timeout: LoadTimeout | None = Field(
        None,
        description="How long a pod may take, from being scheduled, to download and load the model, e.g. 30m. "
        "The server gets a startup probe with this budget, and a pod past it is reported as not loading in time "
        "(a canary is rolled back). Default: the runtime's (MLServer 10m, Triton 20m, vLLM 30m).",
    )

    cache: ModelCache | None = Field(
        None,
        description="A shared model cache: the storage initializer downloads each URI once into this claim and "
        "copies it from there for every later pod, canary and rollback.",
    )
    registry: RegistryOptions | None = Field(
        None, description="For a models:/ URI: how the operator follows the registry.")
    # Written by the operator only, never by a user (absent from the CRD, so
    # the API server prunes it): the registry version a models:/ URI
    # resolved to, kept in the revision it identifies (status.stable.spec).
    resolved: SkipJsonSchema[RegistryRecord | None] = None

    @property
    def load_timeout_seconds(self) -> int | None:
        return parse_duration(self.load_timeout) if self.load_timeout is not None else None

    @property
    def scheme(self) -> str:
        return self.uri.split("://", 1)[0]

    @property
    def pvc_claim(self) -> str | None:
        """The claim name of a pvc:// URI, else None."""
        if self.scheme != "pvc":
            return None
        return self.uri.split("://", 1)[1].split("/", 1)[0]

    @property
    def pvc_path(self) -> str:
        """The path inside the claim of a pvc:// URI ("" means the whole claim)."""
        rest = self.uri.split("://", 1)[1]
        return rest.split("/", 1)[1].strip("/") if "/" in rest else ""

    @field_validator("uri")
    @classmethod
    def _pvc_claim_is_a_name(cls, uri: str) -> str:
        if uri.startswith("pvc://"):
            claim = uri[len("pvc://") :].split("/", 1)[0]
            if not claim or claim != claim.lower() or not all(c.isalnum() or c in "-." for c in claim):
                raise ValueError(f"pvc:// URIs start with a PersistentVolumeClaim name (got {claim!r})")
        return uri

    @field_validator("uri")
    @classmethod
    def _registry_uri_well_formed(cls, uri: str) -> str:
        if uri.startswith("models:"):
            parse_registry_uri(uri)
        return uri

    @model_validator(mode="after")
    def _poll_interval_for_aliases(self) -> "ModelSource":
        if self.registry is not None and self.registry.poll_interval is not None and not (
                is_registry_uri(self.uri) and "@" in self.uri):
            raise FieldProblem(("registry", "pollInterval"), "follows an alias: it needs a URI "
                               "models:/<name>@<alias> (a version number never moves)")
        return self

    @model_validator(mode="after")
    def _credentials_only_for_downloads(self) -> "ModelSource":
        if self.credentials is not None and self.pvc_claim is not None:
            raise FieldProblem("credentials", "a pvc:// model is mounted, not downloaded, so it takes no credentials")
        if self.cache is not None and self.pvc_claim is not None:
            raise FieldProblem("cache", "a pvc:// model is mounted, not downloaded, so it has nothing to cache")
        return self

    @model_serializer(mode="wrap")
    def _absent_credentials_left_out(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The revision hashes the dumped model: a spec without credentials must
        # hash as it did before the field existed, or every running
        # ModelDeployment would roll out when the operator is upgraded.
        dumped = handler(self)
        for field, key in (("credentials", "credentials"), ("load_timeout", "loadTimeout"), ("cache", "cache"),
                           ("registry", "registry"), ("resolved", "resolved")):
            if getattr(self, field) is None:
                dumped.pop(key, None)
                dumped.pop(field, None)
        return dumped


class EnvVar(SpecModel):
    """A container environment variable, as in a Pod spec."""

    name: str = Field(min_length=1, max_length=256)
    value: str | None = Field(None, max_length=32768)
    value_from: dict[str, Any] | None = Field(
        None,
        description="As in a Pod spec (secretKeyRef, configMapKeyRef, fieldRef...).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class RuntimeSpec(SpecModel):
    """Overrides of the serving container; unset fields come from the format's runtime."""

    image: str | None = Field(None, min_length=1, max_length=512)
    port: int | None = Field(None, ge=1, le=65535, description="HTTP port the server listens on.")
    command: list[str] = Field(
        default_factory=list,
        max_length=MAX_LIST_ITEMS,
        description="Replaces the runtime's command when non-empty.",
    )
    args: list[str] = Field(
        default_factory=list,
        max_length=MAX_LIST_ITEMS,
        description="Replaces the runtime's args when non-empty.",
    )
    env: list[EnvVar] = Field(
        default_factory=list,
        max_length=MAX_LIST_ITEMS,
        description="Added to the runtime's env; a name given here wins.",
    )
    readiness_path: str | None = Field(
        None,
        max_length=256,
        pattern=r"^/",
        description="HTTP path that answers 200 once the model is loaded. "
        "Without it (and without a format) readiness only checks the port is open.",
    )


    @field_validator("env")
    @classmethod
    def _reserved_names_untouched(cls, env: list[EnvVar]) -> list[EnvVar]:
        for index, var in enumerate(env):
            if var.name.startswith(RESERVED_ENV_PREFIX):
                raise FieldProblem(
                    (index, "name"), f"{RESERVED_ENV_PREFIX}* variables are set by the operator (got {var.name})"
                )
        return env


class Autoscaling(SpecModel):
    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",
                    "message": "autoscaling.minReplicas must be <= autoscaling.maxReplicas",
                },
                # Issue 14: custom metrics, KEDA and scale to zero (api/autoscaling.py).
                {"rule": "!has(self.minReplicas) || self.minReplicas >= 1 || "
                         "(has(self.engine) && self.engine == 'KEDA')", "message": ZERO_NEEDS_KEDA},
                {"rule": "!has(self.engine) || self.engine != 'KEDA' || has(self.keda)",
                 "message": KEDA_NEEDS_TRIGGERS},
                {"rule": "!has(self.keda) || (has(self.engine) && self.engine == 'KEDA')", "message": KEDA_ONLY},
                {"rule": "!has(self.metrics) || !has(self.engine) || self.engine == 'HPA'",
                 "message": METRICS_ARE_HPA},
            ]
        }
    }

    min_replicas: int = Field(1, ge=0, le=MAX_REPLICAS,
                              description="0 (scale to zero) only with engine KEDA.")
    max_replicas: int = Field(ge=1, le=MAX_REPLICAS)
    target_cpu_utilization_percentage: int = Field(
        80,
        ge=1,
        le=100,
        alias="targetCPUUtilizationPercentage",  # spelled as in HPA autoscaling/v1
        description="Average CPU use, as a percent of requests.cpu, the HPA aims for (when metrics is not set)."
    )
    # Issue 14. Left out of the manifests the operator writes while unset.
    engine: EngineName | None = Field(
        None, description="HPA (default): a HorizontalPodAutoscaler; KEDA: a KEDA ScaledObject (keda.sh/v1alpha1), "
        "which also scales to and from zero.")
    metrics: list[MetricSpec] | None = Field(
        None, min_length=1, max_length=16,
        description="HPA autoscaling/v2 metric specs (Resource, Pods, Object, External, ContainerResource), passed "
        "to the HPA as written, instead of the CPU target.")
    keda: KedaSpec | None = Field(None, description="engine KEDA: the ScaledObject's triggers.")
    replicas: int | None = Field(
        None, ge=0, le=MAX_REPLICAS,
        description="Written by the HPA through the scale subresource under rollout.capacity.mode Replace: the "
        "pods of both roles together. Leave it out of your manifests.",
    )

    @model_validator(mode="after")
    def _min_within_max(self) -> "Autoscaling":
        if self.min_replicas > self.max_replicas:
            raise FieldProblem(
                "minReplicas", f"must be <= maxReplicas (got {self.min_replicas} > {self.max_replicas})"
            )
        if self.min_replicas == 0 and not self.keda_engine:
            raise FieldProblem("minReplicas", ZERO_NEEDS_KEDA.removeprefix("autoscaling.minReplicas "))
        if self.keda_engine and self.keda is None:
            raise FieldProblem("keda", KEDA_NEEDS_TRIGGERS)
        if self.keda is not None and not self.keda_engine:
            raise FieldProblem("keda", KEDA_ONLY.removeprefix("autoscaling.keda "))
        if self.metrics is not None and self.keda_engine:
            raise FieldProblem("metrics", METRICS_ARE_HPA.removeprefix("autoscaling.metrics "))
        return self

    @property
    def keda_engine(self) -> bool:
        return self.engine == "KEDA"

    @property
    def on_cpu(self) -> bool:
        """Scales on CPU utilization by default (no metrics, engine HPA): needs requests.cpu."""
        return self.metrics is None and not self.keda_engine

    def total(self, running: int) -> int:
        """The pods both roles share in capacity mode Replace: what the HPA
        last asked for through the scale subresource (`replicas`), else
        `running`, within minReplicas..maxReplicas."""
        wanted = self.replicas if self.replicas is not None else running
        return min(max(wanted, self.min_replicas), self.max_replicas)


class Resources(SpecModel):
    """Container resources; GPUs go in limits, e.g. nvidia.com/gpu: 1."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)


class ImagePullSecret(SpecModel):
    name: DNS1123Subdomain


class PodMetadata(SpecModel):
    """Labels and annotations copied onto the model pods (the operator's own labels win)."""

    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


# Readiness never rests on the process alone (issue 11): a port that accepts
# connections says nothing about whether the model is loaded.
CUSTOM_READINESS = ("spec.runtime.readinessPath: required for a custom image without spec.model.format: an HTTP "
                    "path that answers 200 only once the model is loaded (an open port says the server started, "
                    "not that the model is ready)")


NO_MIRROR = ("rollout.steps setMirror needs traffic.provider gatewayAPI or istio: a Service sends each request "
             "to one pod and cannot copy it to another")


NO_PRE_ROLLOUT = ("rollout.checks at PreRollout need traffic.provider gatewayAPI or istio: with replicas a ready "
                  "canary pod is behind the client Service, so no check can run before clients reach it")


class ModelDeploymentSpec(SpecModel):
    """What to serve (model), with what (runtime), how many (replicas/autoscaling),
    how to roll out changes (rollout) and how traffic reaches it (traffic).

    Without replicas and autoscaling, one replica runs: a model someone applied is
    expected to serve, and 1 is the smallest count that does.
    """

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.replicas) && has(self.autoscaling))",
                    "message": "set either spec.replicas or spec.autoscaling, not both",
                },
                {
                    "rule": "!has(self.autoscaling) || has(self.autoscaling.metrics) || "
                    "(has(self.autoscaling.engine) && self.autoscaling.engine == 'KEDA') || (has(self.resources) && "
                    "has(self.resources.requests) && 'cpu' in self.resources.requests)",
                    "message": "spec.autoscaling scales on CPU use, so it needs spec.resources.requests.cpu",
                },
                {
                    "rule": "!has(self.autoscaling) || !has(self.autoscaling.minReplicas) || "
                    "self.autoscaling.minReplicas >= 1 || !has(self.rollout) || !has(self.rollout.capacity) || "
                    "!has(self.rollout.capacity.mode) || self.rollout.capacity.mode != 'Replace'",
                    "message": ZERO_NEEDS_SURGE,
                },
                {
                    "rule": "!has(self.rollout) || !has(self.rollout.steps) || "
                    "!self.rollout.steps.exists(s, has(s.setMirror)) || "
                    "(has(self.traffic) && has(self.traffic.provider) && self.traffic.provider != 'replicas')",
                    "message": NO_MIRROR,
                },
                {
                    "rule": "!has(self.rollout) || !has(self.rollout.checks) || "
                    "!self.rollout.checks.exists(c, c.at == 'PreRollout') || "
                    "(has(self.traffic) && has(self.traffic.provider) && self.traffic.provider != 'replicas')",
                    "message": NO_PRE_ROLLOUT,
                },
                {
                    "rule": "has(self.model.format) || !has(self.runtime) || !has(self.runtime.image) || "
                    "has(self.runtime.readinessPath)",
                    "message": CUSTOM_READINESS,
                },
            ]
        }
    }

    model: ModelSource
    runtime: RuntimeSpec | None = None
    replicas: int | None = Field(None, ge=0, le=MAX_REPLICAS, description="Fixed replica count (default 1).")
    autoscaling: Autoscaling | None = None
    resources: Resources = Field(default_factory=Resources)
    pod_metadata: PodMetadata = Field(default_factory=PodMetadata)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=MAX_LIST_ITEMS,
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    )
    service_account_name: DNS1123Subdomain | None = None
    # Scheduling controls (issue 14). Absent unless set, so the revisions of
    # specs written before them keep their hash.
    affinity: dict[str, Any] | None = Field(
        None, description="The pods' affinity, as in a pod spec (nodeAffinity, podAffinity, podAntiAffinity).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    topology_spread_constraints: list[dict[str, Any]] | None = Field(
        None,
        max_length=8,
        description="As in a pod spec. Left out: the replicas of each role spread across nodes "
        "(maxSkew 1, ScheduleAnyway); [] switches that off.",
        json_schema_extra={"items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    )
    priority_class_name: DNS1123Subdomain | None = Field(None, description="The pods' PriorityClass.")
    runtime_class_name: DNS1123Subdomain | None = Field(
        None, description="The pods' RuntimeClass (e.g. nvidia for a GPU container runtime).")
    image_pull_secrets: list[ImagePullSecret] | None = Field(
        None, max_length=16, description="Secrets (in the same namespace) the kubelet pulls the images with.")
    pod_template_patch: dict[str, Any] | None = Field(
        None,
        description="A strategic-merge patch of the pod template the operator builds ({metadata, spec}), for what "
        "no field covers. Part of the revision; a patch that breaks Pod Security restricted, the operator's "
        "labels or the model-server container is refused in the status, and nothing serving is touched.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    # `default: {}` in the CRD makes the API server fill in the nested defaults,
    # so `kubectl get -o yaml` shows the strategy and provider actually in use.
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, json_schema_extra={"default": {}})
    traffic: TrafficSpec = Field(default_factory=TrafficSpec, json_schema_extra={"default": {}})

    @property
    def fixed_replicas(self) -> int | None:
        """Replicas the operator sets itself; None when the HPA owns the count."""
        if self.autoscaling is not None:
            return None
        return 1 if self.replicas is None else self.replicas

    @property
    def replace_total(self) -> int | None:
        """Capacity mode Replace: the pods both roles share, spec.replicas or
        under autoscaling the HPA's count (its scale subresource), within
        minReplicas..maxReplicas. None in mode Surge."""
        if self.rollout.capacity.mode != "Replace":
            return None
        if self.autoscaling is None:
            return self.fixed_replicas
        return self.autoscaling.total(self.autoscaling.min_replicas)

    @property
    def hpa_governs_total(self) -> bool:
        """Autoscaling with capacity mode Replace: the HPA scales the
        ModelDeployment (its scale subresource), i.e. both roles together,
        and the rollout splits that total between them."""
        return self.autoscaling is not None and self.rollout.capacity.mode == "Replace"

    @property
    def wants_disruption_budget(self) -> bool:
        """More than one replica asked: a PodDisruptionBudget keeps all but one up."""
        if self.autoscaling is not None:
            return self.autoscaling.min_replicas > 1
        return (self.fixed_replicas or 0) > 1

    @model_validator(mode="after")
    def _cross_field_rules(self, info: ValidationInfo) -> "ModelDeploymentSpec":
        if self.replicas is not None and self.autoscaling is not None:
            raise FieldProblem((), "set either spec.replicas or spec.autoscaling, not both")
        if self.autoscaling is not None and self.autoscaling.min_replicas == 0 \
                and self.rollout.capacity.mode == "Replace":
            raise FieldProblem(("autoscaling", "minReplicas"), ZERO_NEEDS_SURGE.removeprefix("autoscaling.minReplicas "))
        if self.autoscaling is not None and self.autoscaling.on_cpu and "cpu" not in self.resources.requests:
            raise FieldProblem(
                ("resources", "requests", "cpu"),
                "required with spec.autoscaling: CPU utilization is measured against it",
            )
        if self.traffic.provider == "replicas":
            for index, step in enumerate(self.rollout.steps):
                if step.set_mirror is not None:
                    raise FieldProblem(("rollout", "steps", index, "setMirror"),
                                       NO_MIRROR.removeprefix("rollout.steps setMirror "))
            for index, check in enumerate(self.rollout.checks):
                if check.at == "PreRollout":
                    raise FieldProblem(("rollout", "checks", index, "at"),
                                       NO_PRE_ROLLOUT.removeprefix("rollout.checks at PreRollout "))
        self._check_runtime_is_known(info)
        if self.model.format is None and self.runtime is not None and self.runtime.image \
                and not self.runtime.readiness_path:
            raise FieldProblem(("runtime", "readinessPath"), CUSTOM_READINESS.removeprefix("spec.runtime.readinessPath: "))
        return self

    def _check_runtime_is_known(self, info: ValidationInfo) -> None:
        known = (info.context or {}).get(KNOWN_FORMATS)
        if known is None or (self.runtime is not None and self.runtime.image):
            return
        choices = ", ".join(sorted(known))
        if self.model.format is None:
            raise FieldProblem(
                ("model", "format"), f"required unless spec.runtime.image is set (known formats: {choices})"
            )
        if self.model.format not in known:
            raise FieldProblem(
                ("model", "format"),
                f"unknown format {self.model.format!r}: use one of {choices}, or set spec.runtime.image",
            )
