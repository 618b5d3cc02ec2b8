"""Does a live object already hold what we would apply?

Server-side apply is a no-op when nothing changes, but it is still a write
request; the operator promises *no* write at all in a steady state. So before
applying, the desired manifest is compared with the live object the way
server-side apply itself would see it: every field we set must be present
with the same value; fields others set (or the API server defaulted) are not
ours and do not count. Pure: no I/O, no client imports.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

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
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return _empty(desired) and live is None
        return all(holds(value, live.get(key)) if key in live else _empty(value)
                   for key, value in desired.items())
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
    keyed = desired and all(isinstance(d, dict) and "name" in d for d in desired)
    if keyed and all(isinstance(item, dict) for item in live):
        # Lists merged by name (containers, ports, env, volumes): ours must be
        # there, in our order; entries another manager added are theirs.
        by_name = {item.get("name"): item for item in live}
        if not all(d["name"] in by_name and holds(d, by_name[d["name"]]) for d in desired):
            return False
        ours = [item.get("name") for item in live if item.get("name") in {d["name"] for d in desired}]
        return ours == [d["name"] for d in desired]
    return len(desired) == len(live) and all(holds(d, item) for d, item in zip(desired, live))
