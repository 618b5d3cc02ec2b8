"""The Deployment of one role (stable or canary)."""

from typing import Any

from ..api.spec import ModelDeploymentSpec
from ..runtimes import ResolvedRuntime, RuntimeTable, resolve_runtime
from .labels import MODEL_URI, MODEL_VERSION, role_labels, selector_labels
from .naming import Role, deployment_name
from .ownership import Owner, child_metadata
from .pod import build_pod_template
from .revision import revision_of

# A few old ReplicaSets are enough to inspect a past revision; the operator's
# own history lives in status.history.
REVISION_HISTORY_LIMIT = 3


def build_deployment(
    owner: Owner, spec: ModelDeploymentSpec, table: RuntimeTable, *, role: Role, replicas: int | None,
    runtime: ResolvedRuntime | None = None, revision: str | None = None,
) -> dict[str, Any]:
    """The Deployment running `spec` in `role`.

    `replicas=None` leaves the field out, for when the HPA owns the count: with
    server-side apply, a value here would fight the HPA on every reconcile.
    `runtime`: the serving container to run (the one stable was rolled out
    with); None resolves it from `table`. `revision`: revision_of(spec,
    runtime), when the caller has it already (plan() does, for the canary);
    None computes it.
    """
    runtime = runtime or resolve_runtime(spec, table)
    revision = revision or revision_of(spec, runtime)
    deployment_spec: dict[str, Any] = {}
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    deployment_spec["selector"] = {"matchLabels": selector_labels(owner.name, role)}
    deployment_spec["strategy"] = _strategy(spec, role)
    deployment_spec["progressDeadlineSeconds"] = spec.rollout.progress_deadline_seconds
    deployment_spec["revisionHistoryLimit"] = REVISION_HISTORY_LIMIT
    deployment_spec["template"] = build_pod_template(spec, runtime, name=owner.name, role=role, revision=revision)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": child_metadata(
            owner,
            deployment_name(owner.name, role),
            role_labels(owner.name, role, revision),
            # Read back by the status code: what this Deployment serves.
            {MODEL_VERSION: spec.model.version, MODEL_URI: spec.model.uri},
        ),
        "spec": deployment_spec,
    }


def _strategy(spec: ModelDeploymentSpec, role: Role) -> dict[str, Any]:
    if role == Role.CANARY:
        # The canary's template changes only when a newer revision supersedes
        # it: its pods must stop serving at once (behind the replicas
        # provider's client Service they take traffic while they are ready),
        # not linger through a rolling update. Stable serves meanwhile.
        return {"type": "Recreate"}
    if spec.rollout.strategy == "Recreate":
        # Asked for explicitly, e.g. when two model versions cannot run side by side
        # (one GPU per node): accepts downtime.
        return {"type": "Recreate"}
    capacity, replicas = spec.rollout.capacity, spec.replace_total
    if replicas:
        # The rollout keeps both roles within replicas + maxSurge pods; a
        # template change of stable itself (the first revision replaced
        # before it was recorded) keeps to the same budget.
        surge, unavailable = capacity.budget(replicas)
        return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": unavailable, "maxSurge": surge}}
    # Never take a ready pod away before its replacement is ready.
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}}
