"""The dashboard's data module on the memory broker: it reads through the seam only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aioq import Aarq, Context, JobState
from aioq.dashboard.data import DashboardData
from aioq.testing import MemoryBroker, start_worker

from ..helpers import eventually


@pytest.fixture
async def app() -> AsyncIterator[Aarq]:
    application = Aarq("nats://127.0.0.1:1", prefix="dash-memory")
    application.use_broker(MemoryBroker())
    yield application
    await application.close()


async def test_pages_workers_delayed_and_details_without_a_server(app: Aarq) -> None:
    @app.task
    async def echo(ctx: Context, n: int) -> int:
        return n

    data = DashboardData(app)
    assert await data.workers_ttl() is None
    assert [change async for change in data.watch_workers()] == []
    done = [await echo.enqueue(n) for n in range(5)]
    later = await echo.with_options(delay=3600).enqueue(99)
    running = await start_worker(app, "default")
    for job in done:
        await job.result(timeout=10)
    first = await data.jobs(limit=3)
    assert [r.id for r in first.jobs] == [j.id for j in reversed(done[2:])]  # newest first
    assert first.cursor is not None
    rest = await data.jobs(cursor=first.cursor, limit=10)
    assert [r.id for r in rest.jobs] == [j.id for j in reversed(done[:2])]
    assert rest.cursor is None
    assert (await data.jobs(status="failed")).jobs == []
    [delayed] = await data.delayed()
    assert (delayed.id, delayed.task) == (later.id, echo.name)
    detail = await data.job(later.id)
    assert detail.record.state is JobState.DEFERRED
    assert await data.workers_ttl() == running.worker.heartbeat_ttl
    async for change in data.watch_workers():
        assert change is not None
        assert change.key == running.worker.id
        break
    await running.stop()


async def test_queues_count_the_jobs_waiting_for_dependencies(app: Aarq) -> None:
    @app.task
    async def echo(ctx: Context, n: int) -> int:
        return n

    data = DashboardData(app)
    first = await echo.enqueue(1)
    waiting = [await echo.with_options(depends_on=[first]).enqueue(n) for n in range(3)]
    [queue] = await data.queues()
    assert (queue.name, queue.pending, queue.waiting) == ("default", 1, 3)
    running = await start_worker(app, "default")
    for job in waiting:
        await job.result(timeout=10)
    [queue] = await data.queues()
    assert queue.waiting == 0
    await running.stop()


async def test_groups_show_the_places_held_and_the_app_s_limit(app: Aarq) -> None:
    gate = asyncio.Event()

    @app.task
    async def hold(ctx: Context) -> None:
        await gate.wait()

    app.group_limit("t1", max_running=4, rate_limit=10, rate_interval=60)
    data = DashboardData(app)
    assert await data.groups() == []
    job = await hold.with_options(group="t1").enqueue()
    running = await start_worker(app, "default")

    async def holding() -> list[dict[str, Any]]:
        found = await data.groups()
        return found if found and found[0]["running"] == 1 else []

    [group] = await eventually(holding)
    assert (group["group"], group["started"], group["max_running"]) == ("t1", 1, 4)
    assert (group["limit"], group["interval"]) == (10, 60)
    gate.set()
    await job.result(timeout=10)
    await running.stop()
