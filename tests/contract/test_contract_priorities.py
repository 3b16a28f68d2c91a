"""Contract: priority levels, higher ones first and lower ones at their documented share."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from aioq import Context
from aioq.errors import ConfigError

from ..helpers import eventually
from .conftest import Backend

CONCURRENCY = 5


async def test_high_priority_jobs_start_before_a_low_backlog(backend: Backend) -> None:
    started: list[int] = []

    @backend.app.task(name="work", queue="prio")
    async def work(ctx: Context, level: int) -> None:
        started.append(level)
        await asyncio.sleep(0.002)

    low = work.with_options(priority=0)
    await backend.app.enqueue_many([low.prepare(0) for _ in range(1000)])
    await backend.worker(["prio"], concurrency=CONCURRENCY)
    await eventually(lambda: len(started) >= 50, timeout=20)
    high = work.with_options(priority=9)
    await backend.app.enqueue_many([high.prepare(9) for _ in range(20)])
    enqueued = len(started)
    await eventually(lambda: started.count(9) == 20, timeout=20)
    last_high = len(started) - started[::-1].index(9)
    low_between = started[enqueued:last_high].count(0)
    # The low jobs already fetched when the high ones came start first: about one batch.
    assert low_between <= CONCURRENCY, started[enqueued:last_high]
    await eventually(lambda: len(started) == 1020, timeout=30)


async def test_a_lower_level_gets_its_share_while_a_higher_one_is_busy(backend: Backend) -> None:
    started: list[int] = []

    @backend.app.task(name="work", queue="share")
    async def work(ctx: Context, level: int) -> None:
        started.append(level)

    jobs = [work.with_options(priority=level).prepare(level) for level in (7, 9) for _ in range(60)]
    await backend.app.enqueue_many(jobs)
    await backend.worker(["share"], concurrency=1)
    await eventually(lambda: len(started) == 120, timeout=30)
    # Level 9 against level 7: 2 ** 2 = 4 starts for every one, while both have jobs.
    first = started[:50]
    assert 9 <= first.count(7) <= 11, first
    assert started[-1] == 7


async def test_the_default_level_is_not_starved_by_level_9(backend: Backend) -> None:
    started: list[int] = []

    @backend.app.task(name="work", queue="share")
    async def work(ctx: Context, level: int) -> None:
        started.append(level)

    jobs = [work.with_options(priority=9).prepare(9) for _ in range(60)]
    jobs += [work.prepare(5) for _ in range(10)]
    await backend.app.enqueue_many(jobs)
    await backend.worker(["share"], concurrency=1)
    await eventually(lambda: len(started) == 70, timeout=30)
    # 2 ** (9 - 5) = 16 level-9 starts for each default one.
    assert 2 <= started[:51].count(5) <= 4, started


async def test_priority_is_checked_where_it_is_given(backend: Backend) -> None:
    app = backend.app
    with pytest.raises(ConfigError, match=r"priority must be a whole number from 0 \(lowest\)"):
        app.task(name="bad", priority=10)(_noop)
    task = app.task(name="fine", priority=9)(_noop)
    for wrong in (-1, 10, 2.5, True, "9"):
        with pytest.raises(ConfigError, match="got"):
            task.with_options(priority=wrong)  # type: ignore[arg-type]


async def _noop(ctx: Context) -> None:
    return None


async def test_retries_delays_and_dead_letter_retries_keep_the_level(backend: Backend) -> None:
    app = backend.app
    fail = {"again": True}

    @app.task(name="flaky", queue="kept", retries=0, priority=9)
    async def flaky(ctx: Context) -> str:
        if fail["again"]:
            raise RuntimeError("not yet")
        return "done"

    broker = await app.connect()
    job = await flaky.enqueue()
    running = await backend.worker(["kept"])
    await eventually(lambda: app.dead.list("kept"), timeout=20)
    await running.stop()
    fail["again"] = False
    await app.dead.retry("kept", [job.id])
    assert await broker.jobs.levels("kept") == {9: 1}
    assert (await job.status()).priority == 9
    delayed = await flaky.with_options(delay=timedelta(seconds=0.3)).enqueue()
    await backend.pass_time(0.3)
    await backend.worker(["kept"], scan_interval=0.1)
    assert await job.result(timeout=20) == "done"
    assert await delayed.result(timeout=20) == "done"
    assert await broker.jobs.levels("kept") == {}
    assert [(await j.status()).priority for j in (job, delayed)] == [9, 9]


async def test_a_pause_holds_every_level(backend: Backend) -> None:
    app = backend.app
    ran: list[int] = []

    @app.task(name="note", queue="paused")
    async def note(ctx: Context, level: int) -> None:
        ran.append(level)

    await backend.worker(["paused"])
    await note.with_options(priority=8).enqueue(8)  # level 8 is pulled from now on
    await eventually(lambda: ran == [8])
    await app.pause_queue("paused")
    for level in (8, 1, 5):
        await note.with_options(priority=level).enqueue(level)
    await asyncio.sleep(0.5)  # nothing may run meanwhile
    assert ran == [8]
    await app.resume_queue("paused")
    await eventually(lambda: sorted(ran) == [1, 5, 8, 8], timeout=10)


async def test_a_queued_priority_job_is_found_and_aborted(backend: Backend) -> None:
    app = backend.app

    @app.task(name="later", queue="abortable", priority=2)
    async def later(ctx: Context) -> None:
        return None

    broker = await app.connect()
    job = await later.enqueue()
    assert (await job.status()).state == "queued"
    assert await broker.jobs.find(job.id) == "abortable"
    assert await broker.jobs.backlog("abortable") == 1
    assert await broker.jobs.levels("abortable") == {2: 1}
    assert await job.abort()
    assert await broker.jobs.levels("abortable") == {}


async def test_a_replayed_job_keeps_its_level(backend: Backend) -> None:
    app = backend.app
    app.queue("kept", history=3600)

    @app.task(queue="kept", priority=8)
    async def double(ctx: Context, n: int) -> int:
        return 2 * n

    running = await backend.worker(["kept"])
    assert await (await double.enqueue(2)).result(timeout=10) == 4
    await running.stop()
    (again,) = await app.history.replay("kept")
    broker = await app.connect()
    assert await broker.jobs.levels("kept") == {8: 1}
    await backend.worker(["kept"])
    assert await again.result(timeout=10) == 4
