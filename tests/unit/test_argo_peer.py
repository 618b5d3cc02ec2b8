"""The Argo Rollouts peer of `make bench` (bench/argo_peer.py, built by
hack/build-argo-rollouts.sh): the module it is built from, and the objects it
is given for one of our models."""
from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import argo_peer  # noqa: E402
from modeldeploy.reconcile.plan import steady_children  # noqa: E402
from modeldeploy.runtimes import load_runtime_table  # noqa: E402
from support.models import model_deployment  # noqa: E402

STEPS = [{"setWeight": 50}, {"pause": {"duration": "5s"}}]


def test_the_wrapper_module_builds_the_release_versions_sh_pins_with_its_own_replace_block():
    pinned = re.search(r"^ARGO_ROLLOUTS_VERSION=(\S+)$", (REPO / "hack" / "versions.sh").read_text(), re.M).group(1)
    mod = (REPO / "hack" / "argo-rollouts" / "go.mod").read_text()
    assert f"\tgithub.com/argoproj/argo-rollouts {pinned} " in mod
    assert "tool github.com/argoproj/argo-rollouts/cmd/rollouts-controller" in mod
    # argo-rollouts requires the k8s.io staging modules as v0.0.0; only its replace block makes them buildable.
    for staging in ("api", "apimachinery", "client-go", "apiextensions-apiserver"):
        assert f"\tk8s.io/{staging} => k8s.io/{staging} v0.34.5\n" in mod, staging


def children(name: str = "m0001") -> list[dict]:
    doc = model_deployment(name, version="v1", replicas=2, resources={"requests": {"cpu": "10m", "memory": "32Mi"}})
    return steady_children(name=name, namespace="ns", uid="u", spec=doc["spec"], table=load_runtime_table())


def test_a_rollout_runs_the_pods_our_deployment_runs_with_the_same_canary_steps():
    ours = next(c for c in children() if c["kind"] == "Deployment")
    [rollout] = argo_peer.rollout_objects(children(), STEPS, with_service_and_pdb=False)
    assert rollout["kind"] == "Rollout" and rollout["metadata"] == {"name": "m0001", "namespace": "ns"}
    assert rollout["spec"]["replicas"] == 2
    assert rollout["spec"]["strategy"] == {"canary": {"steps": STEPS}}
    assert rollout["spec"]["template"]["spec"]["containers"] == ours["spec"]["template"]["spec"]["containers"]
    assert rollout["spec"]["template"]["spec"]["initContainers"] == ours["spec"]["template"]["spec"]["initContainers"]
    # Its selector matches its own pods, without our role/revision labels (Argo adds its own hash).
    labels = rollout["spec"]["template"]["metadata"]["labels"]
    assert rollout["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert not {"modeldeploy.io/role", "modeldeploy.io/revision", "app.kubernetes.io/managed-by"} & labels.keys()


def test_the_second_variant_adds_the_models_service_and_pdb_without_an_owner():
    docs = argo_peer.rollout_objects(children(), STEPS, with_service_and_pdb=True)
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [
        ("Rollout", "m0001"), ("Service", "m0001"), ("PodDisruptionBudget", "m0001")]
    for doc in docs[1:]:
        assert "ownerReferences" not in doc["metadata"]
        assert doc["spec"]["selector"].get("matchLabels", doc["spec"]["selector"]) == {"modeldeploy.io/name": "m0001"}


def test_healthy_means_phase_healthy_with_every_replica_ready_for_the_current_generation():
    def ro(phase, ready, gen="2"):
        return {"metadata": {"generation": 2},
                "status": {"phase": phase, "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": gen}}
    check = argo_peer.healthy(2)
    assert check(ro("Healthy", 2))
    assert not check(ro("Progressing", 2)) and not check(ro("Healthy", 1)) and not check(ro("Healthy", 2, gen="1"))
