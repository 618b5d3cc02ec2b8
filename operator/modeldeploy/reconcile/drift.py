"""Does a live object already hold what we would apply, and does anything we
no longer send still linger on it?

Server-side apply is a no-op when nothing changes, but it is still a write
request; the operator promises *no* write at all in a steady state. So before
applying, the desired manifest is compared with the live object the way
server-side apply itself would see it:

- every field we send must be present with the same value (``holds``); fields
  others set (or the API server defaulted) are not ours and do not count;
- every field our field manager owns (the live object's
  ``metadata.managedFields`` entry of ``FIELD_MANAGER``'s Apply) must still be
  in what we send. A field we stopped sending (``gatewayAPI.hostnames`` removed
  from the spec) is removed by the API server only when we apply again, so its
  absence from the desired manifest is a reason to apply (``needs_apply``).

Removing a field from what we send deletes it when no other manager owns it.
For ``spec.replicas`` handed to an HPA that would mean a fall to the default of
1 pod; ``replicas_handover`` gives the manifest that keeps it through the
handover.

Pure: no I/O, no client imports.
"""
from __future__ import annotations

import functools
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

# The one field manager of every child and status the operator writes.
FIELD_MANAGER = "modeldeploy-operator"
# A second, temporary manager that holds `spec.replicas` while the operator
# stops sending it (see replicas_handover).
HANDOVER_MANAGER = "modeldeploy-operator-handover"

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[a-zA-Z]*)$")
_SUFFIX = {
    "": 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def parse_quantity(value: object) -> Decimal | None:
    """A Kubernetes quantity ("500m", "1Gi", 2) as a number, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value.strip())
    if not match or match.group(2) not in _SUFFIX:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    except InvalidOperation:
        return None


def _empty(value: object) -> bool:
    # The API server drops empty and zero values of omitempty fields, so a
    # desired `args: []` or `readOnly: false` reads back as absent.
    return value in (None, "", [], {}, False, 0)


def holds(desired: object, live: object) -> bool:
    """True when ``live`` already contains everything in ``desired``."""
    # Plain loops rather than all(<generator>): this runs over every field of
    # every child on every pass, and the generators were most of its cost.
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return _empty(desired) and live is None
        for key, value in desired.items():
            if key in live:
                other = live[key]
                if type(value) is str and type(other) is str and value == other:
                    continue  # the common leaf, as the scalar case below would judge it
                if not holds(value, other):
                    return False
            elif not _empty(value):
                return False
        return True
    if isinstance(desired, list):
        if not isinstance(live, list):
            return _empty(desired) and live is None
        return _lists_hold(desired, live)
    if desired == live:
        return True
    if live is None:
        return _empty(desired)
    # Quantities come back in canonical form ("1000m" -> "1").
    a, b = parse_quantity(desired), parse_quantity(live)
    return a is not None and a == b


def _lists_hold(desired: list, live: list) -> bool:
    keyed = bool(desired)
    for d in desired:
        if not (isinstance(d, dict) and "name" in d):
            keyed = False
            break
    if keyed:
        for item in live:
            if not isinstance(item, dict):
                keyed = False
                break
    if keyed:
        # Lists merged by name (containers, ports, env, volumes): ours must be
        # there, in our order; entries another manager added are theirs.
        by_name = {item.get("name"): item for item in live}
        for d in desired:
            name = d["name"]
            if name not in by_name or not holds(d, by_name[name]):
                return False
        names = [d["name"] for d in desired]
        wanted = set(names)
        ours = [item.get("name") for item in live if item.get("name") in wanted]
        return ours == names
    if len(desired) != len(live):
        return False
    for d, item in zip(desired, live):
        if not holds(d, item):
            return False
    return True


# --- managedFields ----------------------------------------------------------

def applied_entries(managed_fields: Iterable[dict] | None, manager: str = FIELD_MANAGER) -> list[dict]:
    """``manager``'s server-side apply entries of the main resource (not of a
    subresource such as ``status``), cut to what ``needs_apply`` reads:
    manager, operation, apiVersion and fieldsV1. The watch cache keeps only
    these (kube/cache.py ``_slim``)."""
    return [
        {key: entry[key] for key in ("manager", "operation", "apiVersion", "fieldsV1") if key in entry}
        for entry in managed_fields or ()
        if entry.get("manager") == manager and entry.get("operation") == "Apply" and not entry.get("subresource")
    ]


def _our_entries(live: dict) -> list[dict]:
    return applied_entries((live.get("metadata") or {}).get("managedFields"))


def _matches(item: object, key: dict, *, strict: bool) -> bool:
    # A keyed list item `k:{"containerPort":8080,"protocol":"TCP"}`. The API
    # server fills in key fields that have a default (a port's protocol) even
    # when we leave them out, so the lenient pass accepts a missing key field.
    if not isinstance(item, dict):
        return False
    for name, value in key.items():
        have = item.get(name)
        if not (have == value or (not strict and have is None)):
            return False
    return True


def _missing(fields: dict, node: Any) -> str | None:
    """The first path in the fieldsV1 set ``fields`` (owned at ``node``'s place)
    that ``node`` lacks, or None when all of it is there.

    fieldsV1 keys: ``f:<name>`` a map field, ``k:<json>`` a list item keyed by
    the fields in the JSON object, ``v:<json>`` an item of a set (a list of
    scalars), ``i:<n>`` a list item by index; ``.`` marks the node itself
    (owned as a whole, with or without children), which is there when we got
    here. An unknown prefix counts as missing: one apply too many beats a field
    left behind.
    """
    for key, sub in fields.items():
        child: Any
        if key[:2] == "f:":  # the common case first
            child = node.get(key[2:]) if isinstance(node, dict) else None
            if child is None:
                return key
            if isinstance(sub, dict) and sub:
                below = _missing(sub, child)
                if below is not None:
                    return f"{key}.{below}"
            continue
        if key == ".":
            continue
        prefix, _, rest = key.partition(":")
        if prefix == "k":
            wanted = _json(rest)
            items = node if isinstance(node, list) else []
            child = next((item for item in items if _matches(item, wanted, strict=True)), None)
            if child is None:
                child = next((item for item in items if _matches(item, wanted, strict=False)), None)
            if child is None:
                return key
        elif prefix == "v":
            value = _json(rest)
            if not isinstance(node, list) or not any(holds(value, item) for item in node):
                return key
            continue  # a set item is a leaf
        elif prefix == "i":
            index = int(rest)
            if not isinstance(node, list) or not 0 <= index < len(node):
                return key
            child = node[index]
        else:
            return key
        if isinstance(sub, dict) and sub:
            below = _missing(sub, child)
            if below is not None:
                return f"{key}.{below}"
    return None


@functools.lru_cache(maxsize=4096)
def _json(text: str) -> Any:
    # The k:/v: keys of fieldsV1 repeat on every pass; only read, never changed.
    return json.loads(text)


def removed_field(desired: dict, live: dict) -> str | None:
    """A field path (in fieldsV1 notation) that our manager owns on ``live``
    but ``desired`` no longer sends, or None. An entry written at another
    apiVersion than ``desired``'s counts as a difference (its field names may
    differ; one apply re-records them)."""
    for entry in _our_entries(live):
        if entry.get("apiVersion") not in (None, desired.get("apiVersion")):
            return f"apiVersion {entry.get('apiVersion')}"
        missing = _missing(entry.get("fieldsV1") or {}, desired)
        if missing is not None:
            return missing
    return None


def shrunk_atomic_map(desired: dict, live: dict) -> str | None:
    """A string map our manager owns as a whole from which ``desired`` dropped
    a key, or None. An atomic map (a Service's ``spec.selector``) is a leaf
    in fieldsV1, so ``removed_field`` cannot see a key leave it, and
    containment still holds; but the apply replaces the whole map (switching
    from gatewayAPI to replicas widens the client Service's selector so)."""
    for entry in _our_entries(live):
        found = _shrunk(entry.get("fieldsV1") or {}, desired, live)
        if found is not None:
            return found
    return None


def _shrunk(fields: dict, want: Any, have: Any) -> str | None:
    if not isinstance(want, dict) or not isinstance(have, dict):
        return None
    for key, sub in fields.items():
        prefix, _, name = key.partition(":")
        if prefix != "f":
            continue
        if sub:  # owned field by field below: walk on
            below = _shrunk(sub, want.get(name), have.get(name))
            if below is not None:
                return f"{key}.{below}"
        elif _string_map(want.get(name)) and _string_map(have.get(name)) and set(have[name]) - set(want[name]):
            return key
    return None


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def needs_apply(desired: dict, live: dict | None) -> bool:
    """True when applying ``desired`` under FIELD_MANAGER would change ``live``:
    it does not exist yet, a field we send differs (``not holds``), or a field
    our manager owns (``live``'s managedFields: FIELD_MANAGER, operation Apply,
    no subresource) is absent from ``desired``, which the apply would delete
    or hand back. ``live`` without managedFields is judged by containment
    alone."""
    if live is None:
        return True
    if not holds(desired, live):
        return True
    return removed_field(desired, live) is not None or shrunk_atomic_map(desired, live) is not None


def owns(live: dict, path: tuple[str, ...], manager: str = FIELD_MANAGER) -> bool:
    """Does ``manager``'s Apply entry own the map field at ``path`` (e.g.
    ``("spec", "replicas")``) on ``live``?"""
    for entry in applied_entries((live.get("metadata") or {}).get("managedFields"), manager):
        node: Any = entry.get("fieldsV1") or {}
        for name in path:
            node = node.get(f"f:{name}") if isinstance(node, dict) else None
            if node is None:
                break
        else:
            return True
    return False


def replicas_handover(desired: dict, live: dict | None) -> dict | None:
    """The manifest that keeps ``spec.replicas`` when we stop sending it, or None.

    When ``live.spec.replicas`` is owned by FIELD_MANAGER and ``desired`` no
    longer sends it (``replicas: N`` became ``autoscaling``), applying
    ``desired`` alone would leave the field without an owner, and the API
    server would reset it to its default: the Deployment falls to 1 pod until
    the HPA acts. Instead, following the Kubernetes docs (Server-Side Apply,
    "Transferring ownership"), the returned manifest — apiVersion, kind,
    metadata name/namespace and ``spec.replicas`` at the live value — is
    applied under HANDOVER_MANAGER so that it co-owns the field.

    Order, per object:
      1. apply the returned manifest under HANDOVER_MANAGER, FIRST;
      2. then apply ``desired`` under FIELD_MANAGER: our manager gives the
         field up, the handover manager still owns it, the value stays;
      3. the HPA (applied in the same pass, before or after) takes the field
         over the first time it writes a new count through the scale
         subresource; the handover manager then owns nothing and the API
         server drops its managedFields entry by itself.
    Applying ``desired`` first would drop the field at once: the order is the
    whole point. If step 2 fails after step 1, the next pass repeats both
    (step 1 is then a no-op write).

    The docs apply step 1 without ``force``, and read a conflict as "the HPA
    already owns it, nothing to hand over"; Kube.apply always forces, which
    at worst sets back a count the HPA changed between the read and the
    write, until its next sync.

    Only the cached copy of ``live`` is needed: the cache keeps our own Apply
    entry (kube/cache.py ``_slim``).
    """
    if live is None:
        return None
    if (desired.get("spec") or {}).get("replicas") is not None:
        return None
    replicas = (live.get("spec") or {}).get("replicas")
    if replicas is None or not owns(live, ("spec", "replicas")):
        return None
    meta = desired.get("metadata") or live.get("metadata") or {}
    return {
        "apiVersion": desired.get("apiVersion") or live.get("apiVersion"),
        "kind": desired.get("kind") or live.get("kind"),
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": replicas},
    }
