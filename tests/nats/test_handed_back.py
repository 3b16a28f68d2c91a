"""Jobs a stopping worker hands back are no crash suspects: the next worker runs them together."""

from __future__ import annotations

import asyncio
import contextlib

from aioq import Aarq, Context

from ..conftest import WorkerFactory
from ..helpers import eventually

JOBS = 4


async def test_jobs_cancelled_by_a_stop_run_side_by_side_on_the_next_worker(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    started: list[str] = []
    cancelled: list[str] = []
    running: set[str] = set()
    together: list[int] = []
    all_in = asyncio.Event()

    @app.task(retries=0)
    async def long(ctx: Context) -> None:
        if ctx.attempt == 1:
            started.append(ctx.job_id)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(ctx.job_id)
                raise
        running.add(ctx.job_id)
        together.append(len(running))
        if len(running) == JOBS:
            all_in.set()
        # Stay until every job runs beside this one (or long enough to show they do not).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 2.0)
        running.discard(ctx.job_id)

    for _ in range(JOBS):
        await long.enqueue()
    first = await start_worker(concurrency=JOBS, shutdown_grace=0.05)
    await eventually(lambda: len(started) == JOBS)
    first.stop()
    await eventually(lambda: len(cancelled) == JOBS)
    await start_worker(concurrency=JOBS)
    await eventually(lambda: len(together) == JOBS and not running, timeout=30)
    # Set aside as possible crashes, they would run one at a time.
    assert max(together) == JOBS
