"""The due time of a held job (the ``Aioq-Run-At`` header) and its task name."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Final

import msgspec

from aioq.options import MAX_RUN_AT

__all__ = ["RUN_AT_HEADER", "parse_run_at", "read_run_at", "task_name"]

RUN_AT_HEADER: Final = "Aioq-Run-At"


class _TaskName(msgspec.Struct):
    task: str


_task_decoder: Final = msgspec.json.Decoder(_TaskName)


def task_name(data: bytes) -> str | None:
    """The task of a held job's message, for its record; None if unreadable."""
    try:
        return _task_decoder.decode(data).task
    except msgspec.DecodeError:
        return None


def read_run_at(value: str | None) -> float | None:
    """Read an ``Aioq-Run-At`` header: unix seconds, or an RFC 3339 time with a zone.

    None if the header is absent or empty. Raises `ValueError`, saying why, for anything else
    that is not a finite time up to 9999-12-31T23:59:59Z.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    shown = repr(text[:64])
    try:
        moment = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{RUN_AT_HEADER} {shown} is neither unix seconds nor an RFC 3339 time"
            ) from None
        if parsed.tzinfo is None:
            raise ValueError(f"{RUN_AT_HEADER} {shown} has no time zone") from None
        moment = parsed.timestamp()
    if not math.isfinite(moment):
        raise ValueError(f"{RUN_AT_HEADER} {shown} is not a finite time")
    if moment > MAX_RUN_AT:
        raise ValueError(f"{RUN_AT_HEADER} {shown} is after 9999-12-31T23:59:59Z")
    return moment


def parse_run_at(value: str | None) -> float | None:
    """`read_run_at`, with None for an invalid header too."""
    try:
        return read_run_at(value)
    except ValueError:
        return None
