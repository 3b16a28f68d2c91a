"""`Job.status` never calls a job unknown while it moves on (found by the web-app example)."""

from __future__ import annotations

import asyncio

from aioq import Aarq, Context, JobState

from ..conftest import WorkerFactory


async def test_polling_a_short_job_never_says_unknown(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    # A job shorter than the worker's 50 ms delay before its running record has no record
    # while it runs; it used to finish between status()'s record read and its queue lookup.
    @app.task
    async def quick(ctx: Context, delay: float) -> None:
        await asyncio.sleep(delay)

    await start_worker(queues=["default"])
    for i in range(30):
        job = await quick.enqueue(0.01 + (i % 4) * 0.01)
        async with asyncio.timeout(10):
            while (await job.status()).state is not JobState.SUCCEEDED:
                pass
