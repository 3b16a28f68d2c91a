"""`aioq queues` and `aioq workers`: what the server knows about queues and live workers."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
import typer

from aioq.admin import QueueStats, WorkerStatus
from aioq.app import Aarq
from aioq.cli._common import (
    AppOption,
    Connection,
    CredsOption,
    JsonOption,
    PasswordOption,
    PrefixOption,
    ServerOption,
    TokenOption,
    UserOption,
    echo_json,
    fail,
    fail_on_errors,
    run_with_app,
    unknown_queue,
)
from aioq.cli._output import duration, stamp, table

__all__ = ["queues", "workers"]


def queues(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help=r"Only these queues. \[default: all]", metavar="QUEUE", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
    app_path: AppOption = None,
    server: ServerOption = None,
    prefix: PrefixOption = None,
    creds: CredsOption = None,
    token: TokenOption = None,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """List the queues: pending, in-flight, redelivered, delayed and dead jobs, consumer state.

    Exit status: 0 listed; 1 a named queue is unknown (or another error).
    """
    with fail_on_errors():
        app = Connection(server, prefix, creds, token, user, password).app(app_path)

        async def run(app: Aarq) -> list[QueueStats]:
            return await app.queues()

        found = run_with_app(app, run)
        prefix_name = app.prefix
    if names:
        unknown = [n for n in names if n not in {q.name for q in found}]
        if unknown:
            fail(unknown_queue(unknown[0], prefix_name, [q.name for q in found]))
        found = [q for q in found if q.name in names]
    if as_json:
        echo_json(found)
        return
    if not found:
        typer.echo(f"no queues under prefix {prefix_name!r}")
        return
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
    headers = ["QUEUE", "PENDING", "IN FLIGHT", "REDELIVERED", "DELAYED", "DEAD", "PULLS", "STATE"]
    typer.echo(table(headers, rows))


def _state(queue: QueueStats) -> str:
    if not queue.consumer:
        return "no consumer (no worker pulled yet)"
    if queue.paused:
        until = stamp(queue.paused_until)
        return f"paused {until}" if until == "until resumed" else f"paused until {until}"
    return "active"


def workers(
    as_json: JsonOption = False,
    app_path: AppOption = None,
    server: ServerOption = None,
    prefix: PrefixOption = None,
    creds: CredsOption = None,
    token: TokenOption = None,
    user: UserOption = None,
    password: PasswordOption = None,
) -> None:
    """List the live workers: host, pid, queues, jobs running, counts, last heartbeat.

    Exit status: 0 listed (also when there are none); 1 an error.
    """
    with fail_on_errors():
        app = Connection(server, prefix, creds, token, user, password).app(app_path)

        async def run(app: Aarq) -> list[WorkerStatus]:
            return await app.workers()

        found = run_with_app(app, run)
        prefix_name = app.prefix
    if as_json:
        echo_json([_flat(w) for w in found])
        return
    if not found:
        typer.echo(f"no live workers under prefix {prefix_name!r}")
        return
    now = time.time()
    rows = [
        [
            w.info.id,
            w.info.hostname,
            w.info.pid,
            ",".join(w.info.queues),
            f"{w.info.active}/{w.info.concurrency}",
            w.info.processed,
            w.info.failed,
            w.info.retried,
            duration(now - w.info.started_at),
            f"{duration(w.age)} ago",
        ]
        for w in found
    ]
    headers = [
        "WORKER", "HOST", "PID", "QUEUES", "RUNNING", "PROCESSED", "FAILED", "RETRIED", "UP",
        "HEARTBEAT",
    ]  # fmt: skip
    typer.echo(table(headers, rows))


def _flat(worker: WorkerStatus) -> dict[str, Any]:
    record: dict[str, Any] = msgspec.to_builtins(worker.info)
    record["age"] = round(worker.age, 3)
    return record
