"""The CLI's access to the cluster: one client, the namespace, and errors
translated into one line and an exit code (see errors).

Thin on purpose: get, merge-patch and watch one ModelDeployment. Everything
the commands say about what they read is decided elsewhere (status_view,
requests), from plain dicts.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from ..api import GROUP, PLURAL, SHORT_NAMES, VERSION
from .errors import FAILED, NO_CLUSTER, NOT_FOUND, CliError
from ..kube.clients import make_api_client

IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# Connect and read timeouts for single requests: a dead or blackholed API
# server must end in a clear error, not a hang.
REQUEST_TIMEOUT = (5, 30)
START_HINT = "start one (make cluster-up) or point --kubeconfig / KUBECONFIG at a reachable cluster"


def kubeconfig_path(flag: str | None) -> str | None:
    return flag or os.environ.get("KUBECONFIG") or None


def default_namespace(kubeconfig: str | None) -> str:
    """The current context's namespace, else the pod's (in cluster), else default."""
    try:
        _, current = config.list_kube_config_contexts(config_file=kubeconfig)
        namespace = (current or {}).get("context", {}).get("namespace")
        if namespace:
            return namespace
    except Exception:  # no usable kubeconfig: connect() reports it properly
        pass
    if not kubeconfig and os.path.exists(IN_CLUSTER_NAMESPACE):
        with open(IN_CLUSTER_NAMESPACE, encoding="utf-8") as handle:
            return handle.read().strip() or "default"
    return "default"


class Conflict(CliError):
    """The object changed between our read and our write (HTTP 409): read again."""


class WatchExpired(Exception):
    """The watch's resourceVersion is too old (HTTP 410): list again, then watch."""


@dataclass
class Cluster:
    api: client.ApiClient
    where: str  # the API server's address, for messages

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)


def connect(kubeconfig: str | None) -> Cluster:
    # urllib3 logs each connection retry as a warning; the one-line error
    # after the last retry says everything a user needs.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    if kubeconfig and not all(os.path.exists(p) for p in kubeconfig.split(os.pathsep) if p):
        raise CliError(NO_CLUSTER, f"kubeconfig {kubeconfig} does not exist: {START_HINT}")
    try:
        api = make_api_client(kubeconfig, pool_size=2)
    except config.ConfigException as error:
        if not kubeconfig and "No configuration found" in str(error):
            raise CliError(NO_CLUSTER, "no kubeconfig: KUBECONFIG is unset, ~/.kube/config does not exist and "
                                       f"this is not a pod in a cluster; {START_HINT}") from None
        raise CliError(NO_CLUSTER, f"no usable kubeconfig ({error}): {START_HINT}") from None
    except Exception as error:  # a malformed file fails deep inside the loader
        raise CliError(NO_CLUSTER, f"{kubeconfig or '~/.kube/config'} is not a valid kubeconfig "
                                   f"({type(error).__name__}: {error}); {START_HINT}") from None
    return Cluster(api=api, where=api.configuration.host)


@contextmanager
def translated(cluster: Cluster, name: str, namespace: str) -> Iterator[None]:
    """Turn client and connection errors into CliError, one line each."""
    try:
        yield
    except ApiException as error:
        raise _api_error(error, name, namespace, cluster.where) from None
    except HTTPError as error:
        raise CliError(NO_CLUSTER, f"cannot reach the API server at {cluster.where} ({_reason(error)}): "
                                   f"{START_HINT}") from None


def _reason(error: HTTPError) -> str:
    cause = getattr(error, "reason", None) or error
    text = str(cause)
    # urllib3 wraps the OS error in layers of repr; keep the part a person reads.
    if "]" in text:
        text = text[text.rfind("[") :].split(")")[0].strip("\"'")
    return text


def _api_error(error: ApiException, name: str, namespace: str, where: str) -> CliError:
    status = _status_body(error.body)
    if error.status == 404:
        if status.get("reason") == "NotFound" and (status.get("details") or {}).get("name") == name:
            return CliError(NOT_FOUND, f"modeldeployment {name} not found in namespace {namespace} "
                                       f"(kubectl get {SHORT_NAMES[0]} -A lists them)")
        return CliError(NOT_FOUND, f"the API server at {where} does not know ModelDeployments: install the CRD "
                                   "(modeldeploy crd | kubectl apply --server-side -f -)")
    if error.status == 409:
        return Conflict(FAILED, f"{name} changed while the request was made; try again")
    if error.status == 401:
        return CliError(NO_CLUSTER, f"the API server at {where} refused the kubeconfig's credentials "
                                    "(401 Unauthorized): log in again or use another kubeconfig")
    if error.status == 403:
        return CliError(FAILED, f"forbidden: {status.get('message') or error.reason} "
                                "(ask for RBAC on modeldeployments.modeldeploy.io)")
    message = status.get("message") or (error.body or "").strip()[:200] or error.reason
    return CliError(FAILED, f"the API server answered {error.status} {error.reason}: {message}")


def _status_body(body: Any) -> dict:
    try:
        parsed = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def get_model(cluster: Cluster, namespace: str, name: str) -> dict:
    with translated(cluster, name, namespace):
        return cluster.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT)


def merge_patch(cluster: Cluster, namespace: str, name: str, patch: dict) -> dict:
    """A JSON merge patch: only the keys in `patch` change (here: annotations)."""
    with translated(cluster, name, namespace):
        return cluster.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, patch,
            _content_type="application/merge-patch+json", _request_timeout=REQUEST_TIMEOUT)


def watch_model(cluster: Cluster, namespace: str, name: str, resource_version: str) -> Iterator[tuple[str, dict]]:
    """(event type, object) for `name` from `resource_version` on, until the
    server ends the watch (the caller starts another)."""
    stream = watch.Watch().stream(
        cluster.custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
        field_selector=f"metadata.name={name}", resource_version=resource_version,
        timeout_seconds=300, allow_watch_bookmarks=False)
    with translated(cluster, name, namespace):
        try:
            for event in stream:
                if event["type"] == "ERROR":
                    raise WatchExpired()
                yield event["type"], event["object"]
        except ApiException as error:
            if error.status == 410:
                raise WatchExpired() from None
            raise
