"""Points in time on the command line, as option parsers: a bad one is a usage error."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from aioq.moments import MOMENT_FORMS, parse_moment, parse_until

__all__ = ["MOMENT_HELP", "moment", "pause_end"]

T = TypeVar("T")
MOMENT_HELP = MOMENT_FORMS


def _parser(parse: Callable[[str], T]) -> Callable[[str], T]:
    """`parse` for an option: the `ValueError` it raises becomes a usage error."""

    def parser(text: str) -> T:
        try:
            return parse(text)
        except ValueError as e:
            raise typer.BadParameter(str(e)) from None

    return parser


#: Unix seconds of a number of seconds, or of an ISO 8601 date or time (UTC if naive).
moment = _parser(parse_moment)
#: The end of a pause: ``HH:MM[:SS]`` (next such local time) or an ISO 8601 date and time.
pause_end = _parser(parse_until)
