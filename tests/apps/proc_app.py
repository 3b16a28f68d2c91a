"""Tasks for tests that run real worker processes (``aioq worker tests.apps.proc_app:app``).

The worker process reads its settings from the environment the test sets:

- ``AIOQ_TEST_PREFIX``: the app prefix, so each test has streams of its own;
- ``AIOQ_TEST_ACK_WAIT``: the queue lease in seconds (default 2);
- ``AIOQ_TEST_EVENTS``: a file to which tasks append one JSON line per event.

Events are written with one unbuffered ``os.write`` on an ``O_APPEND`` file, so a line is
complete and on disk before the next statement runs, even if the process is killed right after.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from typing import Any

from aioq import Aarq, Context

TASK_RETRIES = 1


def record(event: str, ctx: Context, **extra: Any) -> None:
    """Append one event line to ``$AIOQ_TEST_EVENTS`` (if set)."""
    path = os.environ.get("AIOQ_TEST_EVENTS")
    if not path:
        return
    line = {
        "event": event,
        "job": ctx.job_id,
        "task": ctx.task,
        "attempt": ctx.attempt,
        "pid": os.getpid(),
        "worker": ctx.worker_id,
        "t": time.time(),
        **extra,
    }
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)


def build(prefix: str, ack_wait: float = 2.0, servers: str = "nats://127.0.0.1:4222") -> Aarq:
    """An app with this module's tasks; tests build their own client with the same prefix."""
    app = Aarq(servers, prefix=prefix, ack_wait=ack_wait)
    # Jobs enqueued with group="tenant" run two at a time over every worker.
    app.group_limit("tenant", max_running=2, recheck=0.2)

    @app.task(queue="default", retries=TASK_RETRIES)
    async def sleep_for(ctx: Context, seconds: float, later: float | None = None) -> None:
        """Sleep `seconds` on the first attempt and `later` (if given) on the next ones."""
        record("start", ctx)
        await asyncio.sleep(seconds if later is None or ctx.attempt == 1 else later)
        record("finish", ctx)

    @app.task(queue="default", retries=TASK_RETRIES)
    def sleep_in_thread(ctx: Context, seconds: float, later: float | None = None) -> None:
        """`sleep_for` as a plain function, run in a thread."""
        record("start", ctx)
        time.sleep(seconds if later is None or ctx.attempt == 1 else later)
        record("finish", ctx)

    @app.task(queue="default", retries=TASK_RETRIES)
    async def kill_worker(ctx: Context) -> None:
        record("start", ctx)
        os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.sleep(30)  # not reached
        record("finish", ctx)

    @app.task(queue="default", retries=TASK_RETRIES)
    async def exit_worker(ctx: Context) -> None:
        """End the worker process at once, as ``os._exit`` in a task would."""
        record("start", ctx)
        os._exit(3)

    @app.task(queue="default", retries=TASK_RETRIES)
    async def echo(ctx: Context, value: Any) -> Any:
        record("start", ctx)
        record("finish", ctx)
        return value

    @app.task(queue="other", retries=TASK_RETRIES)
    async def echo_other(ctx: Context, value: Any) -> Any:
        record("start", ctx)
        record("finish", ctx)
        return value

    return app


app = build(
    os.environ.get("AIOQ_TEST_PREFIX", "aioqtest"),
    ack_wait=float(os.environ.get("AIOQ_TEST_ACK_WAIT", "2")),
)

# Not an app: for the CLI's "not an Aarq" error.
not_an_app = {"app": "no"}
