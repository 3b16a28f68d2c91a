"""`worker_loop`, `start_worker` and `run_worker` on the in-memory backend: no server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import aioq
from aioq import Aarq, ConfigError, JobState, run_worker, start_worker, worker_loop
from aioq.testing import MemoryBroker

from ..helpers import eventually

pytestmark = pytest.mark.timeout(30)

Runner = Callable[[Aarq, MemoryBroker], Awaitable[None]]

RUNNERS: dict[str, Runner] = {
    "worker_loop": lambda app, broker: worker_loop(app, "default", backend=broker),
    "start_worker": lambda app, broker: start_worker(app, "default", 3, backend=broker),
    "run_worker": lambda app, broker: run_worker(app, backend=broker, concurrency=3),
}


def build() -> Aarq:
    # An unreachable server: anything that tried NATS would fail.
    app = Aarq("nats://127.0.0.1:1", connect_timeout=0.2)

    @app.task
    async def add(ctx: aioq.Context, a: int, b: int) -> int:
        return a + b

    return app


async def cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


def others() -> set[asyncio.Task[object]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


def test_the_runners_are_exported() -> None:
    assert aioq.worker_loop is worker_loop
    assert aioq.start_worker is start_worker
    assert {"worker_loop", "start_worker", "run_worker"} <= set(aioq.__all__)


@pytest.mark.parametrize("name", list(RUNNERS))
async def test_runs_jobs_on_a_backend_and_cancels_cleanly(name: str) -> None:
    app, broker = build(), MemoryBroker()
    runner = asyncio.create_task(RUNNERS[name](app, broker))
    await eventually(lambda: app.connected or runner.done(), timeout=5)
    assert not runner.done()
    jobs = [await app.get_task("add").enqueue(n, 1) for n in range(5)]
    assert [await job.result(timeout=5) for job in jobs] == [1, 2, 3, 4, 5]
    await cancel(runner)
    assert others() == set(), "nothing of the worker is left running"
    # The app has its own broker back: it would try NATS again.
    assert not app.connected
    with pytest.raises(aioq.BrokerUnavailableError):
        await app.connect()


async def test_start_worker_runs_its_loops_side_by_side() -> None:
    app, broker = build(), MemoryBroker()
    release = asyncio.Event()
    running: set[str] = set()

    @app.task
    async def hold(ctx: aioq.Context) -> str:
        running.add(ctx.worker_id)
        await release.wait()
        return ctx.worker_id

    runner = asyncio.create_task(start_worker(app, "default", 3, backend=broker))
    await eventually(lambda: app.connected, timeout=5)
    jobs = [await hold.enqueue() for _ in range(3)]
    await eventually(lambda: len(running) == 3, timeout=5)  # one job per loop, at once
    release.set()
    assert {await job.result(timeout=5) for job in jobs} == running
    await cancel(runner)
    assert others() == set()


async def test_cancelling_lets_the_running_job_finish() -> None:
    app, broker = build(), MemoryBroker()
    started, release = asyncio.Event(), asyncio.Event()

    @app.task
    async def slow(ctx: aioq.Context) -> str:
        started.set()
        await release.wait()
        return "done"

    runner = asyncio.create_task(worker_loop(app, "default", backend=broker, shutdown_grace=10))
    await eventually(lambda: app.connected, timeout=5)
    job = await slow.enqueue()
    await asyncio.wait_for(started.wait(), 5)
    runner.cancel()
    await asyncio.sleep(0.05)
    assert not runner.done(), "the stop waits for the running job"
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await runner
    app.use_broker(broker)
    assert (await job.status()).state is JobState.SUCCEEDED
    await app.close()
    assert others() == set()


async def test_worker_id_names_the_loop() -> None:
    app, broker = build(), MemoryBroker()

    @app.task
    async def who(ctx: aioq.Context) -> str:
        return ctx.worker_id

    runner = asyncio.create_task(worker_loop(app, "default", worker_id="loop-7", backend=broker))
    await eventually(lambda: app.connected, timeout=5)
    assert await (await who.enqueue()).result(timeout=5) == "loop-7"
    await cancel(runner)


async def test_a_backend_needs_an_app_not_connected_elsewhere() -> None:
    app = build()
    app.use_broker(MemoryBroker())
    await app.connect()
    with pytest.raises(ConfigError, match="connected to another broker"):
        await worker_loop(app, "default", backend=MemoryBroker())
    await app.close()


async def test_start_worker_rejects_a_bad_concurrency() -> None:
    with pytest.raises(ConfigError, match="concurrency must be an integer >= 1, got 0"):
        await start_worker(build(), "default", 0, backend=MemoryBroker())
