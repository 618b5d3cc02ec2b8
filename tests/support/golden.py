"""Golden files: output compared with a reviewed file under
tests/unit/golden/ (YAML manifests, or text such as the CLI's status view).
UPDATE_GOLDEN=1 rewrites the files for review."""
from __future__ import annotations

import os
from pathlib import Path

import yaml

GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "golden"


def assert_matches_golden(name: str, manifests: list[dict]) -> None:
    text = yaml.safe_dump_all(manifests, sort_keys=False, width=120)
    assert "&id" not in text, "builders returned shared (aliased) objects; callers could mutate both"
    assert_text_matches_golden(f"{name}.yaml", text)


def assert_text_matches_golden(filename: str, text: str) -> None:
    """`text` equals tests/unit/golden/<filename> (a relative path)."""
    path = GOLDEN / filename
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(), f"{path.name} differs: review, then UPDATE_GOLDEN=1 to accept"
