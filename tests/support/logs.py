"""Reading the operator's own log in tests."""
from __future__ import annotations

import re

FORBIDDEN = re.compile(r"\b403\b|Forbidden|Not enough permissions", re.I)
# Log lines begin "2026-12-07 07:34:34,403": those milliseconds are no status code.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+\S*\s*")


def denials(log_text: str) -> list[str]:
    """The log's lines that say the API server refused the operator (403, Forbidden)."""
    return [line for line in log_text.splitlines() if FORBIDDEN.search(TIMESTAMP.sub("", line))]
