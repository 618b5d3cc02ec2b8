"""What Argo CD would show for a ModelDeployment through a real rollout:
manifests/argocd/health.lua evaluated (under Lua 5.1) on every version of
the object the operator wrote -- Healthy when serving, Progressing during the
canary, Suspended while it waits for approval, Degraded once rolled back, and
never Healthy while the new version is not yet the one serving."""
from __future__ import annotations

import pytest

from support.argocd import argocd_health
from support.canary import GATEWAY, model_v, wait_phase
from support.models import apply_md, get_md, is_true, model_deployment, status_view, wait_ready
from support.sampling import ChangeRecorder
from support.waiting import wait_until


class HealthRecorder(ChangeRecorder):
    """Every distinct version of the object (by resourceVersion) with the
    health Argo CD's script gives it, sampled in the background."""

    def __init__(self, cluster, namespace, name):
        def read():
            obj = get_md(cluster, namespace, name)
            return obj, argocd_health(obj)
        super().__init__(read, key=lambda seen: seen[0]["metadata"]["resourceVersion"], period=0.05)


def compact(statuses: list[str]) -> list[str]:
    return [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]


@pytest.mark.e2e
def test_argocd_health_follows_a_rollout_and_a_rollback(cluster, namespace, operator):
    name = "argo"
    doc = model_deployment(name, replicas=2, traffic=GATEWAY, rollout={
        "progressDeadlineSeconds": 10,
        "steps": [{"setWeight": 30}, {"pause": {"duration": "3s"}}, {"setWeight": 60}, {"pause": {}}]})
    approved = model_v(doc, "v2", rollout={**doc["spec"]["rollout"], "approvedVersion": "v2"})
    broken = model_v(approved, "v3")
    broken["spec"]["podMetadata"] = {"labels": {"sim.modeldeploy.io/behavior": "never-ready"}}

    with HealthRecorder(cluster, namespace, name) as recorder:
        apply_md(cluster, namespace, doc)
        wait_ready(cluster, namespace, name)
        apply_md(cluster, namespace, model_v(doc, "v2"))
        wait_phase(cluster, namespace, name, "Paused")
        apply_md(cluster, namespace, approved)
        wait_until(lambda: is_true(m := get_md(cluster, namespace, name), "Ready")
                   and m["status"]["stable"]["modelVersion"] == "v2", timeout=60, what="promotion",
                   describe=lambda: status_view(get_md(cluster, namespace, name)))
        apply_md(cluster, namespace, broken)
        wait_phase(cluster, namespace, name, "RolledBack", timeout=60)
        wait_until(lambda: recorder.seen and recorder.seen[-1][1]["status"] == "Degraded", timeout=10,
                   what="the recorder to see the rollback")

    by_phase: dict[str, set[str]] = {}
    for obj, health in recorder.seen:
        st = obj.get("status") or {}
        current = st.get("observedGeneration") == obj["metadata"]["generation"]
        by_phase.setdefault(st.get("phase") if current else "(not yet observed)", set()).add(health["status"])
        if health["status"] == "Healthy":
            # Argo CD must not call it done while another version is serving.
            assert current and st["stable"]["modelVersion"] == obj["spec"]["model"]["version"], status_view(obj)
            assert "canary" not in st, status_view(obj)
    assert by_phase["Ready"] == {"Healthy"}, by_phase
    assert by_phase["Canary"] == {"Progressing"}, by_phase
    assert by_phase["Paused"] == {"Suspended"}, by_phase
    assert by_phase["RolledBack"] == {"Degraded"}, by_phase
    assert by_phase.get("(not yet observed)", {"Progressing"}) == {"Progressing"}, by_phase

    paused = next(h for o, h in recorder.seen if h["status"] == "Suspended")
    assert "approvedVersion" in paused["message"]
    degraded = recorder.seen[-1][1]
    assert degraded["message"].startswith("RolledBack: ")
    # In order: serving v1, the v2 canary, waiting for approval, v2 serving,
    # the v3 canary, rolled back.
    statuses = compact([h["status"] for _, h in recorder.seen])
    assert is_subsequence(["Healthy", "Progressing", "Suspended", "Healthy", "Progressing", "Degraded"], statuses), \
        statuses
    assert statuses[-1] == "Degraded"


def is_subsequence(wanted: list[str], seen: list[str]) -> bool:
    it = iter(seen)
    return all(any(s == w for s in it) for w in wanted)
