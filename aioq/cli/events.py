"""`aioq events`: follow lifecycle events live."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Annotated

from aioq.app import Aarq
from aioq.cli._command import APP, command, require_queue
from aioq.cli._options import argument, option
from aioq.cli._output import one_line, show
from aioq.inspection import EventStream
from aioq.wire import Event, EventKind
from aioq.worker.signals import until_stopped

__all__ = ["events", "format_event"]


QueueFilter = Annotated[str | None, argument(r"Only this queue's events. \[default: all]", "QUEUE")]
KindOption = Annotated[list[EventKind] | None, option(
    "--kind", case_sensitive=False, metavar="KIND",
    help="Only this kind (enqueued, started, progress, succeeded, retrying, failed, expired, "
    "aborted); repeat for several.")]  # fmt: skip
CountOption = Annotated[int | None, option(
    "--count", "-n", min=1, metavar="N", help="Stop after this many events.", default="no limit"
)]  # fmt: skip
JsonLinesOption = Annotated[bool, option("--json", help="Print each event as one line of JSON.")]


@command
async def events(
    queue: QueueFilter = None,
    kind: KindOption = None,
    count: CountOption = None,
    as_json: JsonLinesOption = False,
    app: Aarq = APP,
) -> None:
    """Follow job events as they happen, one line each, until Ctrl-C or SIGTERM.

    Events are not stored: you see those published while the command runs. A line on stderr
    says when it listens.

    Exit status: 0 stopped by Ctrl-C, SIGTERM, or after --count events; 1 an error.
    """
    try:
        stream = EventStream(app, queue, [k.value for k in kind] if kind else None)
        await until_stopped(_follow(stream, count, as_json))
    except BrokenPipeError:  # `aioq events | head`: the reader is gone, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


async def _follow(stream: EventStream[Aarq], count: int | None, as_json: bool) -> None:
    if stream.queue is not None:
        hint = "; without QUEUE, aioq events follows every queue"
        await require_queue(stream.app, stream.queue, hint)
    async with stream:
        print(f"listening for events on {stream.subject} (Ctrl-C stops)", file=sys.stderr)
        sys.stderr.flush()
        seen = 0
        async for event in stream:
            show(as_json, event, lambda: format_event(event))  # noqa: B023 (called at once)
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                return


def format_event(event: Event) -> str:
    """One line: time, queue, kind, job id, task and what the kind carries."""
    at = datetime.fromtimestamp(event.at).strftime("%H:%M:%S.%f")[:-3]
    parts = [at, event.queue, f"{event.kind.value:<9}", event.id, event.task or "-"]
    if event.attempt is not None:
        parts.append(f"attempt={event.attempt}")
    if event.progress is not None:
        parts.append(f"progress={event.progress:.0%}")
    if event.message:
        parts.append(repr(event.message))
    if event.duration is not None:
        parts.append(f"took={event.duration:.3f}s")
    if event.delay is not None:
        parts.append(f"retry in {event.delay:.1f}s")
    if event.error is not None:
        parts.append(one_line(f"{event.error.type}: {event.error.message}", 80))
    if event.worker:
        parts.append(f"worker={event.worker[:8]}")
    return " ".join(parts)
