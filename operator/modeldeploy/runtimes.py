"""The runtime table (format -> serving container) and how a spec picks from it.

The table is data (data/runtimes.yaml, documented there). `load_runtime_table`
reads the packaged default or an operator-supplied file; `resolve_runtime`
merges a spec's `runtime` overrides onto the entry for its `model.format`.
Both are pure apart from reading the file.
"""

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from .api.durations import parse_duration
from .api.spec import ModelDeploymentSpec

DEFAULT_MODEL_MOUNT_PATH = "/mnt/models"
DEFAULT_PORT = 8080
DEFAULT_RUN_AS_USER = 1000


class _TableModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_alias=True, validate_by_name=True, extra="forbid", frozen=True
    )


class ReadinessProbe(_TableModel):
    path: str = Field(pattern=r"^/")
    initial_delay_seconds: int = Field(5, ge=0)
    period_seconds: int = Field(5, ge=1)
    timeout_seconds: int = Field(2, ge=1)
    failure_threshold: int = Field(3, ge=1)


class RuntimeEntry(_TableModel):
    image: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[dict[str, str], ...] = ()
    run_as_user: int = Field(DEFAULT_RUN_AS_USER, ge=1)
    model_mount_path: str = Field(DEFAULT_MODEL_MOUNT_PATH, pattern=r"^/")
    readiness_probe: ReadinessProbe
    # Seconds a terminating pod keeps serving before the server gets SIGTERM
    # (a preStop sleep): kube-proxy and the routes drop its endpoint first.
    drain_seconds: int = Field(0, ge=0, le=120)
    # How long a model may take to download and load, from the pod's
    # scheduling: the startup probe's budget (spec.model.loadTimeout overrides).
    load_timeout: str | None = Field(None, pattern=r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$")
    # Where the server serves its Prometheus metrics, when not on `port`:
    # exposed as the container port named "metrics", which the PodMonitor in
    # manifests/monitoring scrapes.
    metrics_port: int | None = Field(None, ge=1, le=65535)


class StorageInitializer(_TableModel):
    image: str = Field(min_length=1)
    run_as_user: int = Field(DEFAULT_RUN_AS_USER, ge=1)
    # The image reads MODELDEPLOY_CACHE_DIR (spec.model.cache): this project's
    # initializer does; KServe's downloads anyway, so with such a table the
    # operator refuses spec.model.cache in the status rather than ignore it.
    cache: bool = False

    def to_wire(self) -> dict:
        # `cache` only when true: revisions recorded before it keep their hash.
        return self.model_dump(mode="json", by_alias=True, exclude=None if self.cache else {"cache"})


class RuntimeTable(_TableModel):
    storage_initializer: StorageInitializer
    formats: dict[str, RuntimeEntry] = Field(min_length=1)

    @property
    def known_formats(self) -> frozenset[str]:
        return frozenset(self.formats)


class RuntimeTableError(ValueError):
    """The runtime table file is missing or malformed (an operator config error)."""


def load_runtime_table(path: str | Path | None = None) -> RuntimeTable:
    """Read the runtime table from `path`, or the packaged default when None."""
    if path is None:
        text = resources.files("modeldeploy").joinpath("data/runtimes.yaml").read_text()
        source = "packaged runtimes.yaml"
    else:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise RuntimeTableError(f"cannot read runtime table {path}: {error}") from error
        source = str(path)
    try:
        return RuntimeTable.model_validate(yaml.safe_load(text))
    except (yaml.YAMLError, ValidationError) as error:
        raise RuntimeTableError(f"invalid runtime table {source}: {error}") from error


@dataclass(frozen=True)
class ResolvedRuntime:
    """The serving container to run, after merging spec overrides onto the table.

    Everything here reaches the pod template, so all of it feeds the revision hash.
    """

    image: str
    port: int
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[dict, ...]
    run_as_user: int
    model_mount_path: str
    readiness: ReadinessProbe | None  # None: only check that the port accepts connections
    storage_initializer: StorageInitializer
    drain_seconds: int = 0  # 0 is left out of the revision hash (builders.revision)
    load_timeout_seconds: int = 0  # the table's; 0 (none) is left out of the hash likewise
    # Spread each role's replicas across nodes unless the spec says how
    # (spec.topologySpreadConstraints). A default of the operator's, recorded
    # with the revision like the table's entries: revisions rolled out
    # before it (False, left out of the hash) are not re-templated by an
    # upgrade; the next spec change brings it, through a canary.
    spread_replicas: bool = False
    metrics_port: int = 0  # the table's (0: none, left out of the hash, as for revisions before it)


def resolve_runtime(spec: ModelDeploymentSpec, table: RuntimeTable) -> ResolvedRuntime:
    """The container for `spec`: the format's table entry, overridden field by field
    by `spec.runtime`. The spec must have been validated against this table's formats."""
    entry = table.formats.get(spec.model.format) if spec.model.format else None
    override = spec.runtime
    image = override.image if override and override.image else None
    if entry is None and image is None:
        raise ValueError(f"no runtime for format {spec.model.format!r} and no spec.runtime.image")

    readiness = entry.readiness_probe if entry else None
    if override and override.readiness_path:
        base = readiness or ReadinessProbe(path=override.readiness_path)
        readiness = base.model_copy(update={"path": override.readiness_path})

    return ResolvedRuntime(
        image=image or entry.image,
        port=(override.port if override and override.port else None) or (entry.port if entry else DEFAULT_PORT),
        command=tuple(override.command) if override and override.command else (entry.command if entry else ()),
        args=tuple(override.args) if override and override.args else (entry.args if entry else ()),
        env=_merge_env(entry.env if entry else (), override.env if override else ()),
        run_as_user=entry.run_as_user if entry else DEFAULT_RUN_AS_USER,
        model_mount_path=entry.model_mount_path if entry else DEFAULT_MODEL_MOUNT_PATH,
        readiness=readiness,
        storage_initializer=table.storage_initializer,
        drain_seconds=entry.drain_seconds if entry else 0,
        load_timeout_seconds=parse_duration(entry.load_timeout) if entry and entry.load_timeout else 0,
        spread_replicas=True,
        metrics_port=(entry.metrics_port or 0) if entry and not image else 0,
    )


def runtime_to_wire(runtime: ResolvedRuntime) -> dict:
    """A resolved runtime as JSON (status.stable.runtime): what the stable
    revision was rolled out with, kept so a new runtime table does not
    re-template it (see reconcile.plan)."""
    wire = {
        "image": runtime.image, "port": runtime.port, "command": list(runtime.command), "args": list(runtime.args),
        "env": [dict(var) for var in runtime.env], "runAsUser": runtime.run_as_user,
        "modelMountPath": runtime.model_mount_path,
        "readiness": runtime.readiness.model_dump(mode="json", by_alias=True) if runtime.readiness else None,
        "storageInitializer": runtime.storage_initializer.to_wire(),
    }
    if runtime.drain_seconds:
        wire["drainSeconds"] = runtime.drain_seconds
    if runtime.load_timeout_seconds:
        wire["loadTimeoutSeconds"] = runtime.load_timeout_seconds
    if runtime.spread_replicas:
        wire["spreadReplicas"] = True
    if runtime.metrics_port:
        wire["metricsPort"] = runtime.metrics_port
    return wire


def runtime_from_wire(wire) -> ResolvedRuntime | None:
    """The inverse of runtime_to_wire; None when the record cannot be read
    (then the table decides, as before runtimes were recorded)."""
    try:
        return ResolvedRuntime(
            image=wire["image"], port=int(wire["port"]), command=tuple(wire.get("command") or ()),
            args=tuple(wire.get("args") or ()), env=tuple(dict(var) for var in wire.get("env") or ()),
            run_as_user=int(wire["runAsUser"]), model_mount_path=wire["modelMountPath"],
            readiness=ReadinessProbe.model_validate(wire["readiness"]) if wire.get("readiness") else None,
            storage_initializer=StorageInitializer.model_validate(wire["storageInitializer"]),
            drain_seconds=int(wire.get("drainSeconds") or 0),
            load_timeout_seconds=int(wire.get("loadTimeoutSeconds") or 0),
            spread_replicas=bool(wire.get("spreadReplicas")),
            metrics_port=int(wire.get("metricsPort") or 0),
        )
    except (KeyError, TypeError, ValueError, ValidationError):
        return None


def _merge_env(table_env, spec_env) -> tuple[dict, ...]:
    """Table env first, then the spec's; a name the spec repeats replaces the table's
    value in place (order matters for $(VAR) expansion)."""
    merged: dict[str, dict] = {item["name"]: dict(item) for item in table_env}
    for var in spec_env:
        merged[var.name] = var.model_dump(by_alias=True, exclude_none=True)
    return tuple(merged.values())
