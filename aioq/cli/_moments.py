"""Points in time on the command line: ISO 8601 or unix seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

__all__ = ["MOMENT_HELP", "moment"]

MOMENT_HELP = "ISO 8601 (e.g. 2026-12-01T10:00, UTC unless an offset is given) or unix seconds"


def moment(text: str) -> float:
    """Unix seconds of `text`: a number of seconds, or an ISO 8601 date or time (UTC if naive)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time: give {MOMENT_HELP}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
