"""The app the fault scenarios run in ``aioq worker tests.faults.fault_app:app`` processes.

Settings come from the environment the harness sets:

- ``AIOQ_FAULT_DIR``: the scenario's history directory; each process appends its executions
  to ``exec-<pid>.jsonl`` there (see `history`);
- ``AIOQ_FAULT_PREFIX`` and ``AIOQ_FAULT_ACK_WAIT``: the app prefix and the lease in seconds;
- ``AIOQ_FAULT_CLOCK_SKEW``: seconds added to this process's ``time.time()``, as on a host
  whose clock is off. History records keep the true time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from aioq import Aarq, Context

from .history import append, exec_log

RETRIES = 1
_true_time = time.time
_skew = float(os.environ.get("AIOQ_FAULT_CLOCK_SKEW", "0") or 0)
if _skew:
    time.time = lambda: _true_time() + _skew


def record(kind: str, ctx: Context, **extra: Any) -> None:
    """Append one execution record to this process's log (if the harness set a directory)."""
    directory = os.environ.get("AIOQ_FAULT_DIR")
    if not directory:
        return
    line = {
        "kind": kind,
        "job": ctx.job_id,
        "attempt": ctx.attempt,
        "pid": os.getpid(),
        "t": _true_time(),
        **extra,
    }
    append(exec_log(directory), line)


def build(prefix: str, ack_wait: float, servers: str = "nats://127.0.0.1:4222") -> Aarq:
    """The app with the scenario tasks; the harness's producer builds one with the same prefix."""
    app = Aarq(servers, prefix=prefix, ack_wait=ack_wait)

    @app.task(queue="default", retries=RETRIES)
    async def work(ctx: Context, seconds: float = 0.0, pad: str = "") -> None:
        """Run for `seconds`; `pad` only makes the payload as large as a scenario wants."""
        started = _true_time()
        record("start", ctx)
        if seconds:
            await asyncio.sleep(seconds)
        record("done", ctx, start=started)

    @app.task(queue="default", retries=RETRIES)
    async def poison(ctx: Context) -> None:
        """Kill the worker running it, every time."""
        record("start", ctx)
        os.kill(os.getpid(), signal.SIGKILL)
        await asyncio.sleep(30)  # not reached

    return app


app = build(
    os.environ.get("AIOQ_FAULT_PREFIX", "aioqfault"),
    float(os.environ.get("AIOQ_FAULT_ACK_WAIT", "2")),
)
