"""Builder behaviour that matters to users, beyond the golden files."""

from modeldeploy.api import parse_spec
from modeldeploy.builders import BUILT_KINDS, Owner, Role, build_deployment, owned_by
from modeldeploy.reconcile.plan import steady_children

OWNER = Owner(name="fraud", namespace="ml", uid="uid-1")


def children_of(raw, table):
    """What the operator's plan writes for a new ModelDeployment with `raw`."""
    return steady_children(name=OWNER.name, namespace=OWNER.namespace, uid=OWNER.uid, spec=raw, table=table)


def by_kind(children):
    return {(c["kind"], c["metadata"]["name"]): c for c in children}


def test_every_child_is_owned_and_labelled(minimal_spec, runtime_table):
    minimal_spec.update(autoscaling={"minReplicas": 2, "maxReplicas": 4}, resources={"requests": {"cpu": "1"}})
    children = children_of(minimal_spec, runtime_table)
    # The ScaledObject replaces the HPA under engine KEDA (tests/unit/test_autoscaling_engines.py).
    minimal_spec["autoscaling"] |= {"engine": "KEDA", "keda": {"triggers": [{"type": "cpu", "metadata": {"value": "60"}}]}}
    children += [c for c in children_of(minimal_spec, runtime_table) if c["kind"] == "ScaledObject"]
    # Check Jobs come only while a smoke check runs (tests/unit/test_smoke_checks_machine.py).
    assert {(c["apiVersion"], c["kind"]) for c in children} == {(k.api_version, k.kind) for k in BUILT_KINDS
                                                                if k.kind != "Job"}
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "ml"
        assert meta["ownerReferences"] == [
            {"apiVersion": "modeldeploy.io/v1alpha1", "kind": "ModelDeployment", "name": "fraud", "uid": "uid-1",
             "controller": True, "blockOwnerDeletion": True}
        ]
        assert owned_by("fraud").items() <= meta["labels"].items()
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "modeldeploy-operator"


def test_hpa_owns_replicas_when_autoscaling(minimal_spec, runtime_table):
    minimal_spec.update(autoscaling={"minReplicas": 2, "maxReplicas": 4}, resources={"requests": {"cpu": "1"}})
    children = by_kind(children_of(minimal_spec, runtime_table))
    assert "replicas" not in children[("Deployment", "fraud-stable")]["spec"]
    hpa = children[("HorizontalPodAutoscaler", "fraud")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "fraud-stable"
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 4)


def test_disruption_budget_only_with_more_than_one_replica(minimal_spec, runtime_table):
    assert ("PodDisruptionBudget", "fraud") not in by_kind(children_of(minimal_spec, runtime_table))
    minimal_spec["replicas"] = 3
    assert ("PodDisruptionBudget", "fraud") in by_kind(children_of(minimal_spec, runtime_table))
    del minimal_spec["replicas"]
    minimal_spec.update(autoscaling={"minReplicas": 1, "maxReplicas": 4}, resources={"requests": {"cpu": "1"}})
    assert ("PodDisruptionBudget", "fraud") not in by_kind(children_of(minimal_spec, runtime_table))


def test_client_service_reaches_both_roles_and_role_services_one(minimal_spec, runtime_table):
    children = by_kind(children_of(minimal_spec, runtime_table))
    assert children[("Service", "fraud")]["spec"]["selector"] == {"modeldeploy.io/name": "fraud"}
    assert children[("Service", "fraud-canary")]["spec"]["selector"] == {
        "modeldeploy.io/name": "fraud", "modeldeploy.io/role": "canary"
    }
    stable = children[("Deployment", "fraud-stable")]
    pod_labels = stable["spec"]["template"]["metadata"]["labels"]
    assert stable["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_canary_and_stable_never_select_each_others_pods(minimal_spec, runtime_table):
    spec = parse_spec(minimal_spec, known_formats=runtime_table.known_formats)
    stable = build_deployment(OWNER, spec, runtime_table, role=Role.STABLE, replicas=1)
    canary = build_deployment(OWNER, spec, runtime_table, role=Role.CANARY, replicas=1)
    assert canary["metadata"]["name"] == "fraud-canary"
    assert not stable["spec"]["selector"]["matchLabels"].items() <= canary["spec"]["template"]["metadata"]["labels"].items()


def test_pods_are_restricted(minimal_spec, runtime_table):
    pod = by_kind(children_of(minimal_spec, runtime_table))[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_builders_return_fresh_objects(minimal_spec, runtime_table):
    first = children_of(minimal_spec, runtime_table)
    first[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"]["drop"].append("X")
    first[0]["spec"]["template"]["spec"]["initContainers"][0]["resources"]["limits"]["memory"] = "9Gi"
    second = children_of(minimal_spec, runtime_table)
    assert second[0]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert second[0]["spec"]["template"]["spec"]["initContainers"][0]["resources"]["limits"]["memory"] == "1Gi"


def test_credentials_reach_the_storage_initializer_only(minimal_spec, runtime_table):
    """The user's Secret is named to the initializer (envFrom); the model
    server, which runs user code and answers requests, gets none of it."""
    without = by_kind(children_of(minimal_spec, runtime_table))[("Deployment", "fraud-stable")]
    minimal_spec["model"]["credentials"] = {"secretName": "fraud-model-store"}
    pod = by_kind(children_of(minimal_spec, runtime_table))[("Deployment", "fraud-stable")]["spec"]["template"]["spec"]
    [initializer] = pod["initContainers"]
    assert initializer["envFrom"] == [{"secretRef": {"name": "fraud-model-store"}}]
    assert "fraud-model-store" not in repr(pod["containers"]) + repr(pod["volumes"])
    assert "envFrom" not in without["spec"]["template"]["spec"]["initContainers"][0]
