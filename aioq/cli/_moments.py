"""Points in time on the command line, as option parsers: a bad one is a usage error."""

from __future__ import annotations

from datetime import datetime

import typer

from aioq.moments import MOMENT_FORMS, parse_moment, parse_until

__all__ = ["MOMENT_HELP", "moment", "pause_end"]

MOMENT_HELP = MOMENT_FORMS


def moment(text: str) -> float:
    """Unix seconds of `text`: a number of seconds, or an ISO 8601 date or time (UTC if naive)."""
    try:
        return parse_moment(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def pause_end(text: str) -> datetime:
    """The end of a pause: ``HH:MM[:SS]`` (next such local time) or an ISO 8601 date and time."""
    try:
        return parse_until(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
