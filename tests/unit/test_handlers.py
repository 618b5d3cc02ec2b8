"""What the operator registers with kopf: event handlers only. That is what
makes handlers.NoEssence safe (kopf's per-event essence and diff feed only
change handlers and daemons)."""
import kopf

import modeldeploy.handlers  # noqa: F401 - registers the handlers
from modeldeploy.handlers import NoEssence


def test_only_event_handlers_are_registered_so_no_essence_is_needed():
    registry = kopf.get_default_registry()
    assert list(registry._watching.get_all_handlers()), "the event handlers are registered"
    changing = [h.id for h in registry._changing.get_all_handlers()]
    spawning = [h.id for h in registry._spawning.get_all_handlers()]
    assert changing == [] and spawning == [], (
        f"change handlers {changing} or daemons {spawning} need kopf's diff base: drop NoEssence first")


def test_no_essence_copies_nothing_and_keeps_nothing():
    storage = NoEssence()
    body = kopf.Body({"metadata": {"name": "m"}, "spec": {"replicas": 2}, "status": {"phase": "Ready"}})
    assert storage.build(body=body) is None and storage.fetch(body=body) is None
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=None)
    assert not patch, "nothing written to the object"
