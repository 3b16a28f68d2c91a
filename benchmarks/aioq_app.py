"""aioq: the tasks and the app its worker CLI loads.

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

# The `aioq_noresult` variant sets AIOQ_BENCH_KEEP_RESULT=0: no job records are stored.
# bench_cluster.py sets AIOQ_BENCH_REPLICAS for replicated streams.
# The `aioq_noqueued` variant sets AIOQ_BENCH_NO_QUEUED_RECORD=1 in the enqueuing process: it
# measures what the "queued" record costs (lookups of queued jobs by id do not work then).
_replicas = os.environ.get("AIOQ_BENCH_REPLICAS")


def _no_queued_record() -> None:
    """Patch (or, reloaded without the variable, restore) the "queued" record write."""
    from aioq._nats.records import NatsRecords

    original = getattr(NatsRecords, "_bench_put_queued", None) or NatsRecords.put_queued
    NatsRecords._bench_put_queued = original  # type: ignore[attr-defined]

    async def skipped(*_args: Any) -> None:
        return None

    wanted = skipped if os.environ.get("AIOQ_BENCH_NO_QUEUED_RECORD") else original
    NatsRecords.put_queued = wanted  # type: ignore[method-assign]


_no_queued_record()
app = Aarq(
    os.environ.get("NATS_URL", "nats://127.0.0.1:4222"),
    prefix="bench",
    keep_result=float(os.environ.get("AIOQ_BENCH_KEEP_RESULT", 86_400)),
    replicas=int(_replicas) if _replicas else None,
)


@app.task(queue="bench")
async def noop(ctx: Any, t: float) -> None:
    record(t, time.time())


@app.task(queue="bench")
async def sleep10ms(ctx: Any, t: float) -> None:
    start = time.time()
    await asyncio.sleep(0.01)
    record(t, start)
