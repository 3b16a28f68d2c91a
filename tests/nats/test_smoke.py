from __future__ import annotations

from aioq import Aarq, Context

from ..conftest import WorkerFactory
from ..helpers import eventually


async def test_job_runs_on_worker(app: Aarq, start_worker: WorkerFactory) -> None:
    seen: list[tuple[str, int, int]] = []

    @app.task
    async def add(ctx: Context, a: int, b: int) -> int:
        seen.append((ctx.job_id, ctx.attempt, a + b))
        return a + b

    job = await add.enqueue(1, 2)
    await start_worker(queues=["default"], concurrency=5)
    await eventually(lambda: seen)
    assert seen == [(job.id, 1, 3)]
