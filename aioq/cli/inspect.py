"""`aioq queues`, `aioq workers`, `aioq groups`: the state of queues, workers and groups."""

from __future__ import annotations

import time
from typing import Annotated

import msgspec

from aioq.app import Aarq
from aioq.cli._command import APP, CONNECTION_OPTIONS, Connection, command, fail, unknown_queue
from aioq.cli._options import JsonOption, argument
from aioq.cli._output import duration, show, stamp, table
from aioq.groups import GroupLimit
from aioq.inspection import QueueStats, WorkerStatus, by_level, group_usage

__all__ = ["groups", "queues", "workers"]


@command
async def queues(
    names: Annotated[
        list[str] | None, argument(r"Only these queues. \[default: all]", "QUEUE")
    ] = None,
    as_json: JsonOption = False,
    app: Aarq = APP,
) -> None:
    """List the queues: pending, in-flight, redelivered, delayed, waiting and dead jobs, state.

    Exit status: 0 listed; 1 a named queue is unknown (or another error).
    """
    found = await app.queues()
    unknown = [n for n in names or () if n not in {q.name for q in found}]
    if unknown:
        fail(unknown_queue(unknown[0], app.prefix, [q.name for q in found]))
    found = [q for q in found if not names or q.name in names]
    headers = ["QUEUE", "PENDING", "IN FLIGHT", "REDELIVERED", "DELAYED", "WAITING", "DEAD"]
    headers += ["PULLS", "STATE"]
    rows = [
        [q.name, q.pending, q.in_flight, q.redelivered, q.delayed, q.waiting, q.dead,
         q.waiting_pulls, _state(q)] for q in found
    ]  # fmt: skip
    if any(q.levels for q in found):  # jobs per priority level, only where levels are used
        headers.append("BY LEVEL")
        for row, q in zip(rows, found, strict=True):
            row.append(by_level(q))
    empty = f"no queues under prefix {app.prefix!r}"
    show(as_json, found, lambda: table(headers, rows), empty)


def _state(queue: QueueStats) -> str:
    if not queue.consumer:
        return "no consumer (no worker pulled yet)"
    if queue.paused:
        until = stamp(queue.paused_until)
        return f"paused {until}" if until == "until resumed" else f"paused until {until}"
    return "active"


@command
async def workers(as_json: JsonOption = False, app: Aarq = APP) -> None:
    """List the live workers: host, pid, queues, jobs running, counts, last heartbeat.

    Exit status: 0 listed (also when there are none); 1 an error.
    """
    found = await app.workers()
    empty = f"no live workers under prefix {app.prefix!r}"
    flat = [{**msgspec.to_builtins(w.info), "age": round(w.age, 3)} for w in found]
    show(as_json, flat, lambda: _table(found), empty)


def _table(found: list[WorkerStatus]) -> str:
    now = time.time()
    headers = [
        "WORKER", "HOST", "PID", "QUEUES", "RUNNING", "PROCESSED", "FAILED", "RETRIED", "UP",
        "HEARTBEAT"
    ]  # fmt: skip
    rows = [
        [
            w.info.id, w.info.hostname, w.info.pid, ",".join(w.info.queues),
            f"{w.info.active}/{w.info.concurrency}", w.info.processed, w.info.failed,
            w.info.retried, duration(now - w.info.started_at), f"{duration(w.age)} ago"
        ]
        for w in found
    ]  # fmt: skip
    return table(headers, rows)


@command
async def groups(as_json: JsonOption = False, connection: Connection = CONNECTION_OPTIONS) -> None:
    """List the groups in the shared limits: jobs running now, starts in the rate window.

    With --app, LIMIT shows each group's ``app.group_limit``. Exit status: 0 listed (also
    when there are none); 1 an error.
    """
    async with connection.open() as app:
        found = await group_usage(app)
    with_app = connection.app_path is not None
    limits = [app.group_limits.of(u.group) if with_app else None for u in found]
    flat = [
        {**msgspec.structs.asdict(u), "limit": msgspec.to_builtins(lim) if lim else None}
        for u, lim in zip(found, limits, strict=True)
    ]
    headers = ["GROUP", "RUNNING", "STARTED", *["LIMIT"] * with_app]
    rows = [
        [u.group, u.running, "-" if u.started is None else u.started, *[_limit(lim)] * with_app]
        for u, lim in zip(found, limits, strict=True)
    ]
    empty = f"no group holds places or starts under prefix {app.prefix!r}"
    show(as_json, flat, lambda: table(headers, rows), empty)


def _limit(limit: GroupLimit | None) -> str:
    if limit is None or not limit.limited:
        return "none"
    rate = f"{limit.rate_limit}/{limit.rate_interval:g}s" if limit.rate_limit is not None else ""
    running = f"max {limit.max_running} running" if limit.max_running is not None else ""
    return ", ".join(x for x in (running, rate) if x)
