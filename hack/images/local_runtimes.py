"""The runtime table the real-node tests run with: the shipped table
(operator/modeldeploy/data/runtimes.yaml) with its image references pointed
at the images built here, and nothing else changed, so the contract the tests
prove (command, args, env, port, readiness, the storage initializer's call) is
the contract that ships.

The shipped file is rewritten line by line (only `image:` lines whose value is
a replaced reference), which keeps its comments and YAML anchors; then both
are parsed and compared, and anything but an image reference differing is an
error.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TABLE = REPO / "operator" / "modeldeploy" / "data" / "runtimes.yaml"

_IMAGE_LINE = re.compile(r"^(?P<lead>\s*image:\s*)(?P<ref>\S+)(?P<trail>\s*(#.*)?)$")


def shipped_images(text: str | None = None) -> dict[str, str]:
    """The shipped table's storage initializer and sklearn images:
    {"storage-initializer": ref, "mlserver": ref}."""
    table = yaml.safe_load(text if text is not None else SHIPPED_TABLE.read_text())
    return {"storage-initializer": table["storageInitializer"]["image"], "mlserver": table["formats"]["sklearn"]["image"]}


def image_paths(table, path=()):
    """{path tuple: reference} for every `image` key in a parsed table."""
    found = {}
    if isinstance(table, dict):
        for key, value in table.items():
            if key == "image" and isinstance(value, str):
                found[(*path, key)] = value
            else:
                found.update(image_paths(value, (*path, key)))
    elif isinstance(table, list):
        for i, value in enumerate(table):
            found.update(image_paths(value, (*path, i)))
    return found


def without_images(table):
    """The parsed table with every `image` value blanked out."""
    if isinstance(table, dict):
        return {k: ("<image>" if k == "image" and isinstance(v, str) else without_images(v)) for k, v in table.items()}
    if isinstance(table, list):
        return [without_images(v) for v in table]
    return table


def local_table(replacements: dict[str, str], text: str | None = None) -> str:
    """The shipped table's text with each image reference in `replacements`
    ({shipped ref: local ref}) replaced. Raises ValueError when a reference is
    not in the table or when anything but image references would change."""
    text = text if text is not None else SHIPPED_TABLE.read_text()
    used: set[str] = set()
    lines = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\n")
        match = _IMAGE_LINE.match(body)
        if match and match["ref"] in replacements:
            used.add(match["ref"])
            body = match["lead"] + replacements[match["ref"]] + match["trail"]
            line = body + ("\n" if line.endswith("\n") else "")
        lines.append(line)
    missing = set(replacements) - used
    if missing:
        raise ValueError(f"not in the runtime table's image lines: {sorted(missing)}")
    result = "".join(lines)
    before, after = yaml.safe_load(text), yaml.safe_load(result)
    if without_images(before) != without_images(after):
        raise ValueError("rewriting image references changed more than image references")
    return result
