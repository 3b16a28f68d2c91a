"""`aioq queue pause|resume|delete`: hold back, release, or remove the consumer of a queue."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
import typer

from aioq.app import Aarq
from aioq.cli._command import APP, Group, fail, unknown_queue
from aioq.cli._moments import pause_end
from aioq.cli._options import JsonOption, QueueArgument, option
from aioq.cli._output import duration, fields, show
from aioq.inspection import delete_queue_consumer
from aioq.moments import parse_until
from aioq.naming import validate_queue

__all__ = ["parse_until", "queue_app"]

queue_app = Group(
    "Show a queue's counts, pause and resume it (nats-server 2.11+), delete its consumer."
)

UntilOption = Annotated[datetime | None, option("--until", parser=pause_end, metavar="TIME",
    help="When the pause ends by itself: HH:MM (next such local time) or an ISO 8601 date and "
    "time.", default="until `aioq queue resume`",
)]  # fmt: skip


@queue_app.command()
async def pause(queue: QueueArgument, until: UntilOption = None, app: Aarq = APP) -> None:
    """Stop every worker of QUEUE from starting its jobs; they stay queued.

    Running jobs finish; workers keep running and pick up where they left off on resume.
    """
    await app.pause_queue(queue, until)
    if until is None:
        typer.echo(f"queue {queue} paused until resumed (aioq queue resume {queue})")
    else:
        local = until.astimezone()
        typer.echo(f"queue {queue} paused until {local.strftime('%Y-%m-%d %H:%M:%S %Z')}")


@queue_app.command()
async def resume(queue: QueueArgument, app: Aarq = APP) -> None:
    """Let the workers of QUEUE start its jobs again, at once."""
    await app.resume_queue(queue)
    typer.echo(f"queue {queue} resumed")


@queue_app.command()
async def info(queue: QueueArgument, as_json: JsonOption = False, app: Aarq = APP) -> None:
    """Show one queue's counts, its cap (max_running, per priority level) and history kept.

    Counts: pending, in flight, delayed, waiting (for dependencies), dead.

    Exit status: 0 shown; 1 QUEUE is unknown (or another error).
    """
    found = {q.name: q for q in await app.queues()}
    stats = found.get(queue)
    if stats is None:
        fail(unknown_queue(queue, app.prefix, sorted(found)))
    shown = {**msgspec.structs.asdict(stats), "history": stats.history and duration(stats.history)}
    show(as_json, stats, lambda: fields(shown.items()))


@queue_app.command()
async def delete(queue: QueueArgument, app: Aarq = APP) -> None:
    """Remove the consumer of QUEUE, e.g. one that a mistyped ``-q`` created.

    Refused while a live worker pulls from QUEUE (stop it first: a running worker would
    create the consumer again). Jobs waiting in QUEUE stay stored, and a worker that pulls
    from it later finds them.

    Exit status: 0 removed; 1 QUEUE has no consumer, a worker pulls from it, or another error.
    """
    validate_queue(queue)
    pulling = [w for w in await app.workers() if queue in w.info.queues]
    if pulling:
        names = ", ".join(
            f"{w.info.id} (pid {w.info.pid} on {w.info.hostname}, heartbeat {duration(w.age)} ago)"
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
