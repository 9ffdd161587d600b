"""Times: aware UTC datetimes everywhere, ISO-8601 with ``Z`` in JSON, epoch ms in events."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    text = as_utc(moment).replace(tzinfo=None).isoformat(timespec="milliseconds")
    return text + "Z"


def to_ms(moment: datetime) -> int:
    return int(as_utc(moment).timestamp() * 1000)


def from_ms(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def parse_iso(text: str) -> datetime:
    """Parse an ISO-8601 time; one without a zone is taken as UTC."""
    return as_utc(
        datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    )
