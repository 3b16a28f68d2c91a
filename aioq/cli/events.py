"""`aioq events`: follow lifecycle events live."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated

import typer

from aioq.admin import EventStream
from aioq.app import Aarq
from aioq.cli._common import (
    AppOption,
    Connection,
    CredsOption,
    PasswordOption,
    PrefixOption,
    ServerOption,
    TokenOption,
    UserOption,
    echo_json,
    fail_on_errors,
    require_queue,
    run_with_app,
)
from aioq.cli._output import one_line
from aioq.wire import Event, EventKind

__all__ = ["events", "format_event"]


def events(
    queue: Annotated[
        str | None,
        typer.Argument(help=r"Only this queue's events. \[default: all]", metavar="QUEUE"),
    ] = None,
    kind: Annotated[
        list[EventKind] | None,
        typer.Option(
            "--kind",
            case_sensitive=False,
            help="Only this kind (enqueued, started, progress, succeeded, retrying, failed, "
            "expired, aborted); repeat for several.",
            metavar="KIND",
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            "-n",
            min=1,
            help=r"Stop after this many events. \[default: no limit]",
            metavar="N",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each event as one line of JSON.")
    ] = False,
    app_path: AppOption = None,
    server: ServerOption = None,
    prefix: PrefixOption = None,
    creds: CredsOption = None,
    token: TokenOption = None,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """Follow job events as they happen, one line each, until Ctrl-C or SIGTERM.

    Events are not stored: you see those published while the command runs. A line on stderr
    says when it listens.

    Exit status: 0 stopped by Ctrl-C, SIGTERM, or after --count events; 1 an error.
    """
    with fail_on_errors():
        app = Connection(server, prefix, creds, token, user, password).app(app_path)
        stream = EventStream(app, queue, [k.value for k in kind] if kind else None)

        async def run(app: Aarq) -> None:
            with _stop_signals() as stopped:
                follow = asyncio.ensure_future(_follow(stream, count, as_json))
                stop = asyncio.ensure_future(stopped.wait())
                try:
                    await asyncio.wait([follow, stop], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (follow, stop):
                        task.cancel()
                    await asyncio.gather(follow, stop, return_exceptions=True)
                if not follow.cancelled():
                    follow.result()  # raises what stopped it, if anything did

        try:
            run_with_app(app, run)
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
            if as_json:
                echo_json(event)
            else:
                typer.echo(format_event(event))
            sys.stdout.flush()
            seen += 1
            if count is not None and seen >= count:
                return


@contextlib.contextmanager
def _stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM (handlers only in the main thread)."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopped.set)
            installed.append(sig)
    try:
        yield stopped
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


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
