"""Durations written as Go-style strings ("30s", "5m", "1h30m").

They stay strings on the wire (readable in `kubectl get -o yaml`, and a simple
pattern in the CRD); Python code converts them with `parse_duration`.
"""

import re
from typing import Annotated

from pydantic import AfterValidator, Field

DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
_DURATION = re.compile(
    r"^(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?$"
)
# Longest string a bounded duration can reasonably need; bounds CEL cost too.
DURATION_MAX_LENGTH = 16


def parse_duration(text: str) -> int:
    """Return the number of seconds in `text`, e.g. "1h30m" -> 5400.

    Raises ValueError for anything that is not a non-empty sequence of
    hours, minutes and seconds in that order.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not text or match is None:
        raise ValueError(
            f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 5m, 1h30m"
        )
    hours, minutes, seconds = (int(match.group(unit) or 0) for unit in "hms")
    return hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    """The shortest Go-style spelling of `seconds`, e.g. 5400 -> "1h30m"."""
    if seconds < 0:
        raise ValueError("durations cannot be negative")
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "".join(f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n)
    return text or "0s"


def bounded_duration(minimum_seconds: int, maximum_seconds: int):
    """An annotated `str` type accepting durations within [minimum, maximum]."""

    def check(text: str) -> str:
        seconds = parse_duration(text)
        if not minimum_seconds <= seconds <= maximum_seconds:
            raise ValueError(
                f"must be between {format_duration(minimum_seconds)} and "
                f"{format_duration(maximum_seconds)} (got {text})"
            )
        return text

    # The pattern and lengths are published in the schema (for the CRD) but
    # checked by `check`, whose messages read better than a regex mismatch.
    return Annotated[
        str,
        Field(
            json_schema_extra={
                "pattern": DURATION_PATTERN,
                "minLength": 2,
                "maxLength": DURATION_MAX_LENGTH,
            }
        ),
        AfterValidator(check),
    ]
