"""`aioq queue pause|resume|delete`: hold back, release, or remove the consumer of a queue."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

import typer

from aioq.cli._command import CONNECTION_OPTIONS, Connection, command, fail, unknown_queue
from aioq.cli._options import JsonOption, QueueArgument, option
from aioq.cli._output import duration, fields, show, stamp
from aioq.inspection import QueueStats, delete_queue_consumer
from aioq.naming import validate_queue

__all__ = ["parse_until", "queue_app"]

queue_app = typer.Typer(
    help="Show a queue's counts, pause and resume it (nats-server 2.11+), delete its consumer.",
    no_args_is_help=True,
    add_completion=False,
)

_CLOCK_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


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


def _until_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_until(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


UntilOption = Annotated[str | None, option("--until", metavar="TIME",
    help="When the pause ends by itself: HH:MM (next such local time) or an ISO 8601 date and "
    "time.", default="until `aioq queue resume`",
)]  # fmt: skip


@queue_app.command()
@command
async def pause(
    queue: QueueArgument, until: UntilOption = None, connection: Connection = CONNECTION_OPTIONS
) -> None:
    """Stop every worker of QUEUE from starting its jobs; they stay queued.

    Running jobs finish; workers keep running and pick up where they left off on resume.
    """
    end = _until_option(until)
    async with connection.open() as app:
        await app.pause_queue(queue, end)
    if end is None:
        typer.echo(f"queue {queue} paused until resumed (aioq queue resume {queue})")
    else:
        local = end.astimezone()
        typer.echo(f"queue {queue} paused until {local.strftime('%Y-%m-%d %H:%M:%S %Z')}")


@queue_app.command()
@command
async def resume(queue: QueueArgument, connection: Connection = CONNECTION_OPTIONS) -> None:
    """Let the workers of QUEUE start its jobs again, at once."""
    async with connection.open() as app:
        await app.resume_queue(queue)
    typer.echo(f"queue {queue} resumed")


@queue_app.command()
@command
async def info(
    queue: QueueArgument, as_json: JsonOption = False, connection: Connection = CONNECTION_OPTIONS
) -> None:
    """Show one queue's counts: pending, in flight, delayed, waiting (for dependencies), dead.

    Exit status: 0 shown; 1 QUEUE is unknown (or another error).
    """
    async with connection.open() as app:
        found = {q.name: q for q in await app.queues()}
    stats = found.get(queue)
    if stats is None:
        fail(unknown_queue(queue, app.prefix, sorted(found)))
    show(as_json, stats, lambda: _describe(stats))


def _describe(q: QueueStats) -> str:
    paused = stamp(q.paused_until) or "until resumed"
    return fields([
        ("queue", q.name), ("pending", q.pending), ("in flight", q.in_flight),
        ("redelivered", q.redelivered), ("delayed", q.delayed),
        ("waiting for dependencies", q.waiting), ("dead", q.dead),
        ("idle pulls", q.waiting_pulls), ("consumer", "yes" if q.consumer else "none yet"),
        ("paused", paused if q.paused else "no"),
    ])  # fmt: skip


@queue_app.command()
@command
async def delete(queue: QueueArgument, connection: Connection = CONNECTION_OPTIONS) -> None:
    """Remove the consumer of QUEUE, e.g. one that a mistyped ``-q`` created.

    Refused while a live worker pulls from QUEUE (stop it first: a running worker would
    create the consumer again). Jobs waiting in QUEUE stay stored, and a worker that pulls
    from it later finds them.

    Exit status: 0 removed; 1 QUEUE has no consumer, a worker pulls from it, or another error.
    """
    async with connection.open() as app:
        validate_queue(queue)
        pulling = [w for w in await app.workers() if queue in w.info.queues]
        if pulling:
            names = ", ".join(
                f"{w.info.id} (pid {w.info.pid} on {w.info.hostname}, heartbeat "
                f"{duration(w.age)} ago)"
                for w in pulling
            )
            fail(
                f"queue {queue!r} is pulled by {len(pulling)} live worker(s): {names}; stop "
                "them first (a worker that was killed counts until its heartbeat expires, "
                "three heartbeat intervals after the last)"
            )
        found = {q.name: q for q in await app.queues()}
        stats = found.get(queue)
        if stats is None:
            fail(unknown_queue(queue, app.prefix, sorted(found)))
        if not stats.consumer or not await delete_queue_consumer(app, queue):
            fail(f"queue {queue!r} has no consumer to delete under prefix {app.prefix!r}")
    left = stats.pending + stats.in_flight
    kept = f"; its {left} waiting jobs stay stored" if left else ""
    typer.echo(f"queue {queue}: consumer deleted{kept}")
