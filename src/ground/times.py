"""Wall-clock time as the event log spells it: aware UTC, ISO 8601 with microseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(t: datetime) -> str:
    """One spelling of an instant, so stored times sort as text and compare across backends."""
    return t.astimezone(UTC).isoformat(timespec="microseconds")
