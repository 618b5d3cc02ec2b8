"""Times as Kubernetes writes them: RFC 3339 in UTC, to the second.

The one place they are parsed and formatted (status, Events, pods, peering
records, the CLI).
"""

from datetime import datetime, timezone


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second, e.g. 2026-11-29T09:16:14Z."""
    utc = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | datetime) -> datetime:
    """The moment in `text` (a datetime passes through: the kubernetes client
    returns those); naive times are taken as UTC. Raises ValueError."""
    if isinstance(text, datetime):
        moment = text
    else:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_time_or_none(text: object) -> datetime | None:
    """parse_time, or None for anything unreadable (hand-edited records)."""
    try:
        return parse_time(text)  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        return None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
