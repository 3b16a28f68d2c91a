"""`aioq queues` and `aioq workers`: what the server knows about queues and live workers."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
import typer

from aioq.cli._command import CONNECTION_OPTIONS, Connection, command, fail, unknown_queue
from aioq.cli._options import AppOption, JsonOption
from aioq.cli._output import duration, echo_json, stamp, table
from aioq.inspection import QueueStats, WorkerStatus

__all__ = ["queues", "workers"]


@command
async def queues(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help=r"Only these queues. \[default: all]", metavar="QUEUE", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
    connection: Connection = CONNECTION_OPTIONS,
) -> None:
    """List the queues: pending, in-flight, redelivered, delayed and dead jobs, consumer state.

    Exit status: 0 listed; 1 a named queue is unknown (or another error).
    """
    async with connection.open(app_path) as app:
        found = await app.queues()
    if names:
        unknown = [n for n in names if n not in {q.name for q in found}]
        if unknown:
            fail(unknown_queue(unknown[0], app.prefix, [q.name for q in found]))
        found = [q for q in found if q.name in names]
    if as_json:
        echo_json(found)
    elif not found:
        typer.echo(f"no queues under prefix {app.prefix!r}")
    else:
        _print_queues(found)


def _print_queues(found: list[QueueStats]) -> None:
    headers = ["QUEUE", "PENDING", "IN FLIGHT", "REDELIVERED", "DELAYED", "DEAD", "PULLS", "STATE"]
    rows = [
        [
            q.name,
            q.pending,
            q.in_flight,
            q.redelivered,
            q.delayed,
            q.dead,
            q.waiting_pulls,
            _state(q),
        ]
        for q in found
    ]
    typer.echo(table(headers, rows))


def _state(queue: QueueStats) -> str:
    if not queue.consumer:
        return "no consumer (no worker pulled yet)"
    if queue.paused:
        until = stamp(queue.paused_until)
        return f"paused {until}" if until == "until resumed" else f"paused until {until}"
    return "active"


@command
async def workers(
    as_json: JsonOption = False,
    app_path: AppOption = None,
    connection: Connection = CONNECTION_OPTIONS,
) -> None:
    """List the live workers: host, pid, queues, jobs running, counts, last heartbeat.

    Exit status: 0 listed (also when there are none); 1 an error.
    """
    async with connection.open(app_path) as app:
        found = await app.workers()
    if as_json:
        echo_json([_flat(w) for w in found])
    elif not found:
        typer.echo(f"no live workers under prefix {app.prefix!r}")
    else:
        _print_workers(found)


def _print_workers(found: list[WorkerStatus]) -> None:
    now = time.time()
    headers = [
        "WORKER", "HOST", "PID", "QUEUES", "RUNNING", "PROCESSED", "FAILED", "RETRIED", "UP",
        "HEARTBEAT",
    ]  # fmt: skip
    rows = [
        [
            w.info.id, w.info.hostname, w.info.pid, ",".join(w.info.queues),
            f"{w.info.active}/{w.info.concurrency}", w.info.processed, w.info.failed,
            w.info.retried, duration(now - w.info.started_at), f"{duration(w.age)} ago",
        ]
        for w in found
    ]  # fmt: skip
    typer.echo(table(headers, rows))


def _flat(worker: WorkerStatus) -> dict[str, Any]:
    record: dict[str, Any] = msgspec.to_builtins(worker.info)
    record["age"] = round(worker.age, 3)
    return record
