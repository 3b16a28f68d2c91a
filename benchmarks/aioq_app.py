"""aioq: the tasks and the app its worker CLI loads.

Written against aioq's specified API while the package was being written; it has since
run end to end (quick runs and 2,000-job runs) against the work tree of 2026-11-23.

Worker:

    aioq worker benchmarks.aioq_app:app -q bench -c 100 -s $NATS_URL --log-level warning
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from aioq import Aarq
from benchmarks.recorder import record

app = Aarq(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), prefix="bench")


@app.task(queue="bench")
async def noop(ctx: Any, t: float) -> None:
    record(t, time.time())


@app.task(queue="bench")
async def sleep10ms(ctx: Any, t: float) -> None:
    start = time.time()
    await asyncio.sleep(0.01)
    record(t, start)
