"""Resolving models:/ URIs through an MLflow tracking server's REST API.

    models:/<name>/<version>  GET /api/2.0/mlflow/model-versions/get
    models:/<name>@<alias>    GET /api/2.0/mlflow/registered-models/alias
    then, for the version     GET /api/2.0/mlflow/model-versions/get-download-uri

The answer (artifact URI, version, run id) goes to the pure plan as
World.registry. Reads are cached per ModelDeployment: a version number never
changes, so it is read once; an alias is read once too, and again every
spec.model.registry.pollInterval when one is set. After a restart the answer
recorded in status.model is taken as the last read (no call, no surprise
rollout of an alias that moved while the operator was down and is not
followed). A failed read is retried with a bounded backoff (2 s doubling to
60 s); meanwhile the plan holds everything as it is (RegistryUnavailable).

The calls are short (5 s timeout) and run on the API worker pool, like the
Prometheus queries. Credentials are MLflow's own variables, set on the
operator's Deployment from a Secret the admin creates (settings.py).
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any

from ..backoff import capped_backoff
from ..api.durations import parse_duration
from ..api.registry import RegistryLookup, RegistryRef, Resolution, is_registry_uri, parse_registry_uri

TIMEOUT_SECONDS = 5.0
BACKOFF_FIRST_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 60.0
ARTIFACTS_SCHEME = "mlflow-artifacts:"


class RegistryError(Exception):
    pass


@dataclass(frozen=True)
class RegistryConfig:
    tracking_uri: str | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = None

    def headers(self) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username and self.password is not None:
            pair = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        return {}


def artifact_uri(download_uri: str, tracking_uri: str) -> str:
    """What the storage initializer can download: a proxied `mlflow-artifacts:`
    location (a server started with --serve-artifacts) becomes its HTTP
    endpoint on the tracking server; any other URI (s3://, gs://...) as is."""
    if not download_uri.startswith(ARTIFACTS_SCHEME):
        return download_uri
    path = urllib.parse.urlparse(download_uri).path.lstrip("/")
    return f"{tracking_uri.rstrip('/')}/api/2.0/mlflow-artifacts/artifacts/{path}"


def resolve(config: RegistryConfig, uri: str, get: Callable[[str, Mapping[str, str]], dict] | None = None) -> Resolution:
    """Ask the registry what `uri` serves. Raises RegistryError, in words."""
    if not config.tracking_uri:
        raise RegistryError("the operator has no MLflow tracking server configured "
                            "(MODELDEPLOY_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI)")
    ref = parse_registry_uri(uri)
    ask = get or (lambda path, query: _get(config, path, query))
    if ref.alias is not None:
        found = ask("registered-models/alias", {"name": ref.name, "alias": ref.alias})
    else:
        found = ask("model-versions/get", {"name": ref.name, "version": ref.version})
    version = found.get("model_version") or {}
    number = str(version.get("version") or ref.version or "")
    if not number:
        raise RegistryError(f"{_named(ref)}: the registry's answer names no version")
    status = version.get("status", "READY")
    if status != "READY":
        raise RegistryError(f"{_named(ref)}: version {number} is {status}, not READY")
    download = ask("model-versions/get-download-uri", {"name": ref.name, "version": number}).get("artifact_uri")
    if not download:
        raise RegistryError(f"{_named(ref)}: version {number} has no artifact URI")
    return Resolution(asked=uri, uri=artifact_uri(download, config.tracking_uri), version=number,
                      run_id=version.get("run_id") or None)


def _named(ref: RegistryRef) -> str:
    return f"model {ref.name!r} alias {ref.alias!r}" if ref.alias else f"model {ref.name!r} version {ref.version}"


def _get(config: RegistryConfig, path: str, query: Mapping[str, str]) -> dict:
    url = f"{config.tracking_uri.rstrip('/')}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json", **config.headers()})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # MLflow's errors are JSON: error_code, message
        try:
            body = json.loads(exc.read())
            detail = f"{body.get('error_code', '')}: {body.get('message', '')}".strip(": ")
        except ValueError:
            detail = exc.reason
        raise RegistryError(f"HTTP {exc.code} from the MLflow registry: {detail}"[:400]) from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise RegistryError(f"MLflow registry at {config.tracking_uri} unreachable: "
                            f"{getattr(exc, 'reason', exc)}") from None
    except ValueError:
        raise RegistryError(f"MLflow registry at {config.tracking_uri} answered something other than JSON") from None


@dataclass(frozen=True)
class _Entry:
    asked: str
    resolution: Resolution | None = None
    read_at: float = 0.0  # monotonic; of the last good read
    error: str | None = None
    failures: int = 0
    retry_at: float = 0.0


def _recorded(status: Mapping[str, Any] | None, uri: str) -> Resolution | None:
    """status.model of a previous process, when it is for this URI."""
    model = (status or {}).get("model") or {}
    if model.get("uri") != uri or not model.get("resolvedUri") or not model.get("version"):
        return None
    return Resolution(asked=uri, uri=model["resolvedUri"], version=str(model["version"]), run_id=model.get("runId"))


def _poll_seconds(spec: Mapping[str, Any]) -> int | None:
    poll = (((spec.get("model") or {}).get("registry")) or {}).get("pollInterval")
    try:
        return parse_duration(poll) if poll else None
    except ValueError:
        return None


class Registry:
    """Per-ModelDeployment cache of registry answers, with the retry clock."""

    def __init__(self, config: RegistryConfig, executor: Executor | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 resolver: Callable[[RegistryConfig, str], Resolution] = resolve) -> None:
        self.config = config
        self.resolver = resolver
        self.executor = executor
        self.clock = clock
        self._entries: dict[Any, _Entry] = {}

    async def lookup(self, key: Any, model: Mapping[str, Any]) -> RegistryLookup | None:
        """What to plan with for `model`'s spec.model.uri; None when it is not a models:/ URI."""
        spec = model.get("spec") or {}
        uri = (spec.get("model") or {}).get("uri") or ""
        if not is_registry_uri(uri):
            self._entries.pop(key, None)
            return None
        try:
            ref = parse_registry_uri(uri)
        except ValueError:
            return None  # the plan refuses the spec
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or entry.asked != uri:
            recorded = _recorded(model.get("status"), uri)
            entry = _Entry(asked=uri, resolution=recorded, read_at=now)
        poll = _poll_seconds(spec) if ref.mutable else None
        if self._due(entry, poll, now):
            entry = await self._read(entry, now)
        self._entries[key] = entry
        return RegistryLookup(resolution=entry.resolution, error=entry.error)

    def due_in(self, key: Any, model: Mapping[str, Any]) -> float | None:
        """Seconds until `model`'s registry answer is to be read again (a
        retry, or an alias's next poll); None: not before the spec changes."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self.clock()
        if entry.error is not None or entry.resolution is None:
            return max(0.5, entry.retry_at - now)
        poll = _poll_seconds(model.get("spec") or {}) if "@" in entry.asked else None
        return None if poll is None else max(0.5, entry.read_at + poll - now)

    def forget(self, key: Any) -> None:
        self._entries.pop(key, None)

    def _due(self, entry: _Entry, poll: int | None, now: float) -> bool:
        if entry.error is not None or entry.resolution is None:
            return now >= entry.retry_at
        return poll is not None and now >= entry.read_at + poll

    async def _read(self, entry: _Entry, now: float) -> _Entry:
        loop = asyncio.get_running_loop()
        try:
            resolution = await loop.run_in_executor(self.executor, self.resolver, self.config, entry.asked)
        except (RegistryError, ValueError) as exc:
            failures = entry.failures + 1
            wait = capped_backoff(BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS, failures)
            return replace(entry, error=str(exc), failures=failures, retry_at=now + wait)
        return _Entry(asked=entry.asked, resolution=resolution, read_at=now)
