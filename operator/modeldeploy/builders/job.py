"""Smoke-test check Jobs (spec.rollout.checks): one Job per check per canary.

    Job  <name>-<check>-<hash>   hash: sha256 of (name, check, canary revision,
                                 canary start) -- deterministic, so an
                                 operator that restarts finds the Job it made
                                 instead of making another, and a revision
                                 tried again later gets new Jobs (the old
                                 ones' outcomes are not its own).

The Job carries the model's name, the check and the canary revision as
labels (and the managed-by label the operator's watch selects); its pods
carry none of the model's pod labels, so the model's pod watch, Services and
PDB never count them. Jobs are immutable: the operator creates each once and
never re-applies it; a new revision means a new Job name.
"""

import copy
import hashlib
from typing import Any

from .labels import PREFIX, REVISION, common_labels
from .naming import Role, role_service_name
from .ownership import Owner, child_metadata
from .service import SERVICE_PORT

CHECK = f"{PREFIX}/check"
COMPONENT_CHECK = "smoke-test"
MAX_NAME = 63  # a Job's name is its pods' job-name label value
HASH_LENGTH = 8
# Env vars every container of a check Job is given.
CANARY_URL = "MODELDEPLOY_CANARY_URL"
CANARY_REVISION = "MODELDEPLOY_CANARY_REVISION"
CANARY_VERSION = "MODELDEPLOY_CANARY_VERSION"
MODEL_NAME = "MODELDEPLOY_MODEL_NAME"
OUR_ENV = (CANARY_URL, CANARY_REVISION, CANARY_VERSION, MODEL_NAME)
# Pod Security "restricted", when the user's template says nothing.
RUN_AS_USER = 65532


def check_job_name(name: str, check: str, revision: str, started: str) -> str:
    """`<name>-<check>-<hash>`, at most 63 characters (the prefix is cut, never the hash)."""
    digest = hashlib.sha256(f"{name}/{check}/{revision}/{started}".encode()).hexdigest()[:HASH_LENGTH]
    prefix = f"{name}-{check}"[: MAX_NAME - HASH_LENGTH - 1].rstrip("-")
    return f"{prefix}-{digest}"


def canary_url(name: str, namespace: str) -> str:
    """The canary role Service: the canary's pods only, never stable's."""
    return f"http://{role_service_name(name, Role.CANARY)}.{namespace}.svc:{SERVICE_PORT}"


def build_check_job(owner: Owner, *, check: str, job_name: str, template: dict[str, Any], timeout_seconds: int,
                    revision: str, model_version: str) -> dict[str, Any]:
    """The Job for one check of the canary `revision`, from the user's JobSpec."""
    spec = copy.deepcopy(template)
    spec.setdefault("backoffLimit", 0)
    spec.setdefault("activeDeadlineSeconds", timeout_seconds)
    pod = spec.setdefault("template", {})
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), CHECK: check, f"{PREFIX}/check-job": job_name}
    pod_spec = pod.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Never")
    pod_spec.setdefault("securityContext", {"runAsNonRoot": True, "runAsUser": RUN_AS_USER,
                                            "seccompProfile": {"type": "RuntimeDefault"}})
    ours = [
        {"name": CANARY_URL, "value": canary_url(owner.name, owner.namespace)},
        {"name": CANARY_REVISION, "value": revision},
        {"name": CANARY_VERSION, "value": model_version},
        {"name": MODEL_NAME, "value": owner.name},
    ]
    for container in [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]:
        theirs = [env for env in container.get("env") or [] if env.get("name") not in OUR_ENV]
        container["env"] = [*theirs, *ours]
        container.setdefault("securityContext", {"allowPrivilegeEscalation": False,
                                                 "capabilities": {"drop": ["ALL"]}})
    labels = {**common_labels(owner.name), "app.kubernetes.io/component": COMPONENT_CHECK, CHECK: check,
              REVISION: revision}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": child_metadata(owner, job_name, labels, {f"{PREFIX}/model-version": model_version}),
        "spec": spec,
    }
