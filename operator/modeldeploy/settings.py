"""Operator configuration: command-line flags, with environment variables
(MODELDEPLOY_*) as defaults so a Deployment can configure it either way."""
from __future__ import annotations

import os
from dataclasses import dataclass, field


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass
class OperatorSettings:
    # Empty: all namespaces. Otherwise only these: names or kopf's patterns
    # ("team-*", "team-*,!team-test"); `run --namespace` sets them, joined by
    # ";" (a pattern holds commas, never a semicolon).
    namespaces: list[str] = field(
        default_factory=lambda: [n for n in os.environ.get("MODELDEPLOY_NAMESPACES", "").split(";") if n])
    runtime_table: str | None = field(default_factory=lambda: os.environ.get("MODELDEPLOY_RUNTIME_TABLE") or None)
    # How many ModelDeployments are reconciled at once, and the threads/
    # connections that carry their API calls.
    concurrency: int = field(default_factory=lambda: _env_int("MODELDEPLOY_CONCURRENCY", 8))
    api_workers: int = field(default_factory=lambda: _env_int("MODELDEPLOY_API_WORKERS", 8))
    # A full pass over every ModelDeployment; in a steady state it writes nothing.
    resync_seconds: float = field(default_factory=lambda: _env_float("MODELDEPLOY_RESYNC_SECONDS", 300))
    # Opt-in ("1"): after each full garbage collection its survivors are
    # frozen out of the next ones (metrics.GcTimer), thawed every
    # gc_thaw_seconds so cycles among them are still freed. Shorter stalls,
    # more memory (README, Scale: "Event-loop lag"), so off by default.
    gc_freeze: bool = field(default_factory=lambda: os.environ.get("MODELDEPLOY_GC_FREEZE", "0") == "1")
    gc_thaw_seconds: float = field(default_factory=lambda: _env_float("MODELDEPLOY_GC_THAW_SECONDS", 300))
    # Off only to measure what write avoidance saves (the "naive" benchmark).
    skip_unchanged_writes: bool = field(default_factory=lambda: os.environ.get("MODELDEPLOY_NAIVE") != "1")
    kubeconfig: str | None = field(default_factory=lambda: os.environ.get("KUBECONFIG") or None)
    # With --peering: how long this replica's keep-alive counts once written.
    # A standby takes over about this long after the active replica dies
    # (kopf's default, 60 s, means 5-60 s; keep-alives go out every
    # lifetime - 5..10 s, at least every second).
    peering_lifetime: int = field(default_factory=lambda: _env_int("MODELDEPLOY_PEERING_LIFETIME", 60))
    # At most this many canaries in flight at once, across every watched
    # namespace; the others wait in line, stable serving (0: no limit).
    max_concurrent_canaries: int = field(default_factory=lambda: _env_int("MODELDEPLOY_MAX_CONCURRENT_CANARIES", 0))
    # Rollout notifications (README "Notifications"): a YAML/JSON file of
    # named endpoints, usually mounted from a Secret the cluster admin
    # creates; or the same document inline in the environment (a Secret's
    # key through valueFrom.secretKeyRef). Neither: no notifications.
    notify_config: str | None = field(default_factory=lambda: os.environ.get("MODELDEPLOY_NOTIFY_CONFIG") or None)
    notify_endpoints: str | None = field(
        default_factory=lambda: os.environ.get("MODELDEPLOY_NOTIFY_ENDPOINTS") or None)
    # models:/ URIs (README "Models from an MLflow registry"): the MLflow
    # tracking server, and its credentials under MLflow's own names, set on
    # the operator's Deployment from a Secret the admin creates (the
    # operator's RBAC never reads Secrets).
    mlflow_tracking_uri: str | None = field(default_factory=lambda: os.environ.get(
        "MODELDEPLOY_MLFLOW_TRACKING_URI") or os.environ.get("MLFLOW_TRACKING_URI") or None)
    mlflow_tracking_token: str | None = field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_TOKEN") or None)
    mlflow_tracking_username: str | None = field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_USERNAME") or None)
    mlflow_tracking_password: str | None = field(
        default_factory=lambda: os.environ.get("MLFLOW_TRACKING_PASSWORD") or None)
    # `run --shard I/N`: reconcile only the ModelDeployments of shard I of N
    # (reconcile/shards.py); empty: all of them.
    shard: str = field(default_factory=lambda: os.environ.get("MODELDEPLOY_SHARD", "").strip())
