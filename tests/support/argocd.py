"""Argo CD's view of a ModelDeployment: manifests/argocd/health.lua run the
way Argo CD runs a health script -- Lua 5.1 (Argo CD embeds gopher-lua, a
5.1 implementation), the object as the global `obj`, no io/os/require --
returning its `{status, message}`."""
from __future__ import annotations

from support.cluster import REPO

HEALTH_LUA = REPO / "manifests" / "argocd" / "health.lua"
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def argocd_health(obj: dict) -> dict:
    from lupa import lua51

    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    env = lua.globals()
    for unsafe in ("io", "os", "require", "dofile", "loadfile", "load", "loadstring", "module", "package"):
        env[unsafe] = None
    env.obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH_LUA.read_text())
    health = {"status": result["status"], "message": result["message"]}
    assert health["status"] in STATUSES, health
    return health
