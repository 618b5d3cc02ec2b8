"""Three operator processes splitting the work (`modeldeploy run --shard I/3`):
each ModelDeployment is reconciled by exactly one of them, the one
reconcile/shards.py names; a shard killed with SIGKILL leaves its models
exactly as they were (a new version waits) while the other shards' models
roll; started again, it picks its models up and finishes their rollouts.

Who wrote what is read from the API server's audit log: each shard's client
names itself in its user agent (`modeldeploy-operator/<version> shard I/3`)."""
from __future__ import annotations

import time
from collections import defaultdict

from modeldeploy.reconcile.shards import shard_of
from support.canary import model_v
from support.chaos import brief, list_mds
from support.models import apply_md, is_true, model_deployment
from support.operator import AuditLog
from support.process import MeteredOperator
from support.waiting import wait_until

SHARDS = 3
MODELS = 30
STEPS = [{"setWeight": 50}, {"pause": {"duration": "2s"}}]


def _doc(name: str, version: str = "v1") -> dict:
    doc = model_deployment(name, replicas=1, resources={"requests": {"cpu": "10m", "memory": "32Mi"}},
                           rollout={"steps": STEPS})
    return model_v(doc, version) if version != "v1" else doc


def _settled(md: dict, version: str) -> bool:
    st = md.get("status") or {}
    return (is_true(md, "Ready") and (st.get("stable") or {}).get("modelVersion") == version
            and st.get("observedGeneration") == md["metadata"]["generation"] and not st.get("canary"))


def _wait_settled(cluster, ns, names, version, timeout):
    def pending():
        mds = list_mds(cluster, ns)
        return [n for n in names if not _settled(mds.get(n, {"metadata": {}}), version)]
    wait_until(lambda: not pending(), timeout=timeout, what=f"{len(names)} ModelDeployments settled on {version}",
               describe=lambda: [brief(md) for n, md in list_mds(cluster, ns).items() if n in pending()][:5])


def _model_of(entry: dict, names: set[str]) -> str | None:
    """The ModelDeployment a write was for: the object itself, or a child
    named after it (name, name-stable, name-canary). Events (created
    without a name in the request) are not attributed."""
    name = (entry.get("objectRef") or {}).get("name") or ""
    for candidate in (name, name.removesuffix("-stable"), name.removesuffix("-canary")):
        if candidate in names:
            return candidate
    return None


def _writes_by_shard(audit: AuditLog, mark: int, ns: str, names: set[str]) -> dict[int, dict[str, int]]:
    """{shard: {model: writes}} of the operator's writes in `ns` since `mark`."""
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in audit.writes_since(mark, ("modeldeploy-operator/",)):
        if (entry.get("objectRef") or {}).get("namespace") != ns:
            continue
        agent = entry.get("userAgent", "")
        assert " shard " in agent, f"a write by an unsharded client: {agent} {entry['requestURI']}"
        shard = int(agent.rsplit(" shard ", 1)[1].split("/", 1)[0])
        model = _model_of(entry, names)
        if model is not None:
            out[shard][model] += 1
    return out


def test_each_model_is_reconciled_by_one_shard_and_a_dead_shard_s_models_wait_for_it(cluster, own_namespace,
                                                                                    tmp_path):
    ns = own_namespace
    audit = AuditLog(cluster)
    names = [f"m{i:02d}" for i in range(MODELS)]
    owner = {name: shard_of(ns, name, SHARDS) for name in names}
    of_shard = {s: sorted(n for n in names if owner[n] == s) for s in range(SHARDS)}
    assert all(of_shard.values()), of_shard  # 30 names in 3 shards: none is empty
    ops = [MeteredOperator(cluster, ns, tmp_path / f"shard-{s}.log", extra_args=("--shard", f"{s}/{SHARDS}"))
           for s in range(SHARDS)]
    try:
        for op in ops:
            op.start()

        # 1. Thirty models at once: all Ready, each written only by its shard.
        mark = audit.mark()
        started = time.monotonic()
        for name in names:
            apply_md(cluster, ns, _doc(name))
        _wait_settled(cluster, ns, names, "v1", timeout=180)
        print(f"\n{MODELS} ModelDeployments Ready under {SHARDS} shards in {time.monotonic() - started:.1f}s "
              f"({', '.join(f'shard {s}: {len(m)}' for s, m in of_shard.items())})")
        writes = _writes_by_shard(audit, mark, ns, set(names))
        for s in range(SHARDS):
            assert set(writes[s]) == set(of_shard[s]), (s, sorted(writes[s]), of_shard[s])
            assert ops[s].writes() > 0
        assert "shard 1/3: reconciling only" in ops[1].log_text()

        # 2. SIGKILL one shard; a new version for every model. The other
        # shards' models roll to v2; the dead shard's are not touched at all.
        dead = max(range(SHARDS), key=lambda s: len(of_shard[s]))
        alive = sorted(n for n in names if owner[n] != dead)
        ops[dead].kill()
        mark = audit.mark()
        for name in names:
            apply_md(cluster, ns, _doc(name, "v2"))
        _wait_settled(cluster, ns, alive, "v2", timeout=180)
        mds = list_mds(cluster, ns)
        for name in of_shard[dead]:
            md = mds[name]
            assert md["status"]["stable"]["modelVersion"] == "v1" and not md["status"].get("canary"), brief(md)
            assert md["status"]["observedGeneration"] < md["metadata"]["generation"], brief(md)
        canaries = {d.metadata.name for d in cluster.apps.list_namespaced_deployment(ns).items}
        assert not {f"{n}-canary" for n in of_shard[dead]} & canaries
        writes = _writes_by_shard(audit, mark, ns, set(names))
        assert dead not in writes, f"the killed shard wrote: {dict(writes.get(dead, {}))}"
        assert not {n for s in writes for n in writes[s]} & set(of_shard[dead])
        assert {n for s in writes for n in writes[s]} == set(alive)

        # 3. Started again, it picks up its models and finishes their rollouts.
        mark = audit.mark()
        ops[dead].start()
        _wait_settled(cluster, ns, of_shard[dead], "v2", timeout=120)
        writes = _writes_by_shard(audit, mark, ns, set(names))
        assert set(writes[dead]) == set(of_shard[dead]), (sorted(writes[dead]), of_shard[dead])
        for s in writes:
            if s != dead:
                assert not set(writes[s]) & set(of_shard[dead]), (s, writes[s])
        for md in list_mds(cluster, ns).values():
            assert [(h["modelVersion"], h["result"]) for h in md["status"]["history"]] == [
                ("v1", "Deployed"), ("v2", "Promoted")], brief(md)
    finally:
        for op in ops:
            op.kill()
