"""Plain-text tables and times for the human output of the commands."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec
import typer

if TYPE_CHECKING:
    from aioq.job import Job

__all__ = [
    "duration",
    "echo_json",
    "fields",
    "indent",
    "one_line",
    "show",
    "show_jobs",
    "stamp",
    "table",
]

# Beyond this a pause is open-ended (nats-server's "forever" is the year 9999).
_FAR_FUTURE: Final = 32_503_680_000.0  # 3000-01-01


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Columns separated by two spaces; columns of numbers are right-aligned."""
    data = [list(row) for row in rows]
    cells = [list(headers)] + [[_cell(value) for value in row] for row in data]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [
        bool(data) and all(_is_number(row[i]) or row[i] is None for row in data)
        for i in range(len(headers))
    ]
    return "\n".join(
        "  ".join(
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True)
        ).rstrip()
        for row in cells
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def fields(pairs: Iterable[tuple[str, object]]) -> str:
    """``name:  value`` lines, aligned; pairs whose value is None are left out."""
    shown = [(name, value) for name, value in pairs if value is not None]
    width = max((len(name) for name, _ in shown), default=0) + 1
    return "\n".join(f"{name + ':':<{width}}  {value}" for name, value in shown)


def stamp(unix: float | None, now: float | None = None) -> str | None:
    """Local time with the age or the time left: ``2025-01-31 12:00:01 (5s ago)``."""
    if unix is None:
        return None
    if unix >= _FAR_FUTURE:
        return "until resumed"
    moment = datetime.fromtimestamp(unix).strftime("%Y-%m-%d %H:%M:%S")
    delta = (time.time() if now is None else now) - unix
    relative = f"{duration(delta)} ago" if delta >= 0 else f"in {duration(-delta)}"
    return f"{moment} ({relative})"


def duration(seconds: float) -> str:
    """A short duration: ``0.4s``, ``12s``, ``3m05s``, ``2h01m``, ``3d04h``."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86_400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86_400}d{whole % 86_400 // 3600:02d}h"


def one_line(text: str, width: int = 60) -> str:
    """`text` on one line, cut to `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def indent(text: str, prefix: str = "  ") -> str:
    """Every line of `text` indented."""
    return "\n".join(prefix + line for line in text.rstrip("\n").splitlines())


def echo_json(value: Any) -> None:
    """Print `value` (wire structs included) as one line of JSON."""
    typer.echo(msgspec.json.encode(value).decode())


def show(as_json: bool, value: Any, text: Callable[[], str], empty: str | None = None) -> None:
    """Print `value` as JSON; else `empty` if given and `value` is empty; else `text()`."""
    if as_json:
        echo_json(value)
    else:
        typer.echo(empty if empty is not None and not value else text())


def show_jobs(as_json: bool, jobs: Sequence[Job[Any]], done: str, empty: str) -> None:
    """Print new `jobs` as JSON, or a ``{done} ID (task T, queue Q)`` line each; else `empty`."""
    listed = [{"id": j.id, "task": j.task, "queue": j.queue} for j in jobs]
    text = "\n".join(f"{done} {j.id} (task {j.task or '-'}, queue {j.queue})" for j in jobs)
    show(as_json, listed, lambda: text, empty)
