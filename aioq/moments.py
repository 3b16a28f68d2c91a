"""Points in time written by people: unix seconds, ISO 8601, or a time of day."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["MOMENT_FORMS", "parse_moment", "parse_until"]

#: The forms `parse_moment` reads, for help texts and error messages.
MOMENT_FORMS: Final = (
    "ISO 8601 (e.g. 2026-12-01T10:00, UTC unless an offset is given) or unix seconds"
)

_CLOCK_RE: Final = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_moment(text: str) -> float:
    """Unix seconds of `text`: a number of seconds, or an ISO 8601 date or time (UTC if naive).

    Raises:
        ValueError: `text` is neither.
    """
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: give {MOMENT_FORMS}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def parse_until(text: str, now: datetime | None = None) -> datetime:
    """A pause end: ``HH:MM[:SS]`` (the next such local time) or an ISO 8601 date and time.

    Raises:
        ValueError: The text is neither, or names a time that has passed.
    """
    now = now or datetime.now().astimezone()
    match = _CLOCK_RE.match(text.strip())
    if match:
        hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"{text!r} is not a time of day")
        moment = now.replace(hour=hour, minute=minute, second=second, microsecond=0)
        return moment if moment > now else moment + timedelta(days=1)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither HH:MM nor an ISO 8601 date and time (2026-01-31T09:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the local time zone
    if moment <= now:
        raise ValueError(f"{text!r} has passed already")
    return moment
