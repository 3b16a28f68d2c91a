"""One job enqueued and run through a given app: the proof that a connection set-up works."""

from __future__ import annotations

from aioq import Aarq, Context
from aioq.testing.harness import start_worker


async def run_one_job(app: Aarq) -> None:
    """Enqueue a job, run it on an in-process worker of `app`, and check its result."""

    @app.task
    async def double(ctx: Context, x: int) -> int:
        return 2 * x

    try:
        job = await double.enqueue(21)
        worker = await start_worker(app, ["default"])
        try:
            assert await job.result(timeout=10) == 42
        finally:
            await worker.stop()
    finally:
        await app.close()
