"""Inspection behind the seam: every listing works, with the same answers, on both backends."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from aioq import Context, JobFailedError, JobState
from aioq.inspection import (
    list_dead,
    list_delayed,
    list_records,
    queue_stats,
    schedules,
    worker_statuses,
)
from aioq.wire import JobMessage, JobRecord, WorkerInfo

from ..helpers import eventually
from .conftest import Backend


async def test_queue_stats_count_pending_delayed_and_dead_jobs(backend: Backend) -> None:
    app = backend.app

    @app.task(queue="listed", retries=0)
    async def work(ctx: Context, fail: bool) -> None:
        if fail:
            raise ValueError("no")

    @app.task(queue="unused")
    async def idle(ctx: Context) -> None: ...

    await work.enqueue(False)
    await work.enqueue(False)
    await work.with_options(delay=600).enqueue(False)
    before = {q.name: q for q in await queue_stats(app)}
    assert before["listed"].pending == 2
    assert before["listed"].delayed == 1
    assert not before["listed"].consumer
    assert before["unused"].pending == 0  # a task's queue is listed before any job

    # No scheduler: in memory the clock jumps ahead while the test waits, and a scheduler
    # would then move the delayed job to its queue.
    await backend.worker(["listed"], scheduler=False)
    with pytest.raises(JobFailedError):
        await (await work.enqueue(True)).result(timeout=10)

    async def settled() -> bool:
        stats = {q.name: q for q in await queue_stats(app)}["listed"]
        return stats.consumer and stats.pending == 0 and stats.in_flight == 0

    await eventually(settled)
    after = {q.name: q for q in await queue_stats(app)}["listed"]
    assert (after.dead, after.delayed, after.paused) == (1, 1, False)


async def test_queue_stats_show_the_cap_and_history_the_server_holds(backend: Backend) -> None:
    app = backend.app
    app.queue("capped", max_running=3, history=90)

    @app.task(queue="capped")
    async def work(ctx: Context) -> None: ...

    @app.task(queue="plain")
    async def other(ctx: Context) -> None: ...

    before = {q.name: q for q in await queue_stats(app)}["capped"]
    assert (before.max_running, before.history) == (None, None)  # no consumer, nothing kept
    await backend.worker(["capped", "plain"])
    await (await work.with_options(priority=9).enqueue()).result(timeout=10)
    await (await other.enqueue()).result(timeout=10)
    stats = {q.name: q for q in await queue_stats(app)}
    assert (stats["capped"].max_running, stats["capped"].history) == (3, 90)
    assert (stats["plain"].max_running, stats["plain"].history) == (None, None)


async def test_workers_are_listed_with_their_liveness(backend: Backend) -> None:
    app = backend.app
    running = await backend.worker()

    async def listed() -> bool:
        return running.worker.id in [w.info.id for w in await worker_statuses(app)]

    await eventually(listed)
    [status] = [w for w in await worker_statuses(app) if w.info.id == running.worker.id]
    assert status.state == "alive"
    assert status.age < 15
    [stale] = await worker_statuses(app, stale_after=-1000.0)
    assert stale.state == "stale"
    [dead] = await worker_statuses(app, stale_after=-1000.0, dead_after=-1000.0)
    assert dead.state == "dead"


async def test_records_are_listed_by_queue_status_and_task_page_by_page(
    backend: Backend,
) -> None:
    app = backend.app

    @app.task(queue="a")
    async def first(ctx: Context, n: int) -> int:
        return n

    @app.task(queue="b", retries=0)
    async def second(ctx: Context) -> None:
        raise ValueError("no")

    await backend.worker(["a", "b"])
    jobs = [await first.enqueue(n) for n in range(5)]
    for job in jobs:
        await job.result(timeout=10)
    failed = await second.enqueue()
    with pytest.raises(JobFailedError):
        await failed.result(timeout=10)

    async def all_settled() -> bool:
        records, _ = await list_records(app, status=JobState.SUCCEEDED, limit=100)
        return len(records) == 5

    await eventually(all_settled)
    succeeded, cursor = await list_records(app, status="succeeded", limit=100)
    assert sorted(r.id for r in succeeded) == sorted(j.id for j in jobs)
    assert cursor is None
    [dead] = (await list_records(app, queue="b"))[0]
    assert (dead.id, dead.state) == (failed.id, JobState.FAILED)
    assert [r.id for r in (await list_records(app, task=second.name))[0]] == [failed.id]

    pages: list[list[str]] = []
    cursor = None
    for _ in range(10):
        page, cursor = await list_records(app, queue="a", cursor=cursor, limit=2)
        pages.append([r.id for r in page])
        if cursor is None:
            break
    seen = [job_id for page in pages for job_id in page]
    assert sorted(seen) == sorted(j.id for j in jobs)
    assert len(set(seen)) == len(seen)
    assert all(len(page) <= 2 for page in pages)
    with pytest.raises(ValueError, match="invalid cursor"):
        await list_records(app, cursor="not-a-cursor")


async def test_dead_letters_are_listed_page_by_page(backend: Backend) -> None:
    app = backend.app

    @app.task(retries=0)
    async def doomed(ctx: Context, n: int) -> None:
        raise ValueError(str(n))

    await backend.worker()
    jobs = [await doomed.enqueue(n) for n in range(3)]
    for job in jobs:
        with pytest.raises(JobFailedError):
            await job.result(timeout=10)
    first, cursor = await list_dead(app, "default", limit=2)
    assert [e.letter.id for e in first] == [j.id for j in jobs[:2]]
    assert cursor is not None
    rest, end = await list_dead(app, "default", cursor=cursor, limit=2)
    assert [e.letter.id for e in rest] == [jobs[2].id]
    assert end is None


async def test_delayed_jobs_and_repeatables_are_listed_with_their_times(
    backend: Backend,
) -> None:
    app = backend.app

    @app.task
    async def later(ctx: Context) -> None: ...

    app.add_repeatable(later, every=3600, name="hourly")
    now = backend.clock.time()
    job = await later.with_options(delay=600).enqueue()
    [held], cursor = await list_delayed(app)
    assert (held.job_id, held.queue, held.task, cursor) == (job.id, "default", later.name, None)
    assert held.run_at is not None
    assert now + 590 <= held.run_at <= now + 610
    assert (await list_delayed(app, "other"))[0] == []
    [schedule] = await schedules(app)
    summary = (schedule.name, schedule.task, schedule.queue, schedule.last_fire)
    assert summary == ("hourly", later.name, "default", None)
    assert now < schedule.next_fire <= now + 3601


async def test_records_are_read_back_by_position(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def noop(ctx: Context, n: int) -> int:
        return n

    jobs = [await noop.enqueue(n) for n in range(3)]
    await backend.worker()
    for job in jobs:
        await job.result(timeout=10)
    inspection = (await app.connect()).inspection
    first, end = await inspection.record_span()
    found = await inspection.records_between(first, end)
    records = [msgspec.json.decode(data, type=JobRecord) for _, data in found]
    # Each job once, at the position of its latest write.
    assert sorted(r.id for r in records) == sorted(job.id for job in jobs)
    assert {r.state for r in records} == {JobState.SUCCEEDED}
    positions = [position for position, _ in found]
    assert positions == sorted(positions)
    assert all(first <= p < end for p in positions)
    assert await inspection.records_between(positions[-1], end) == found[-1:]
    assert await inspection.records_between(first, positions[0]) == []
    assert await inspection.records_between(end, end + 10) == []


async def test_worker_heartbeats_are_watched_until_the_worker_leaves(backend: Backend) -> None:
    broker = await backend.app.connect()
    assert await broker.workers.ttl() is None  # no worker ever registered
    assert [change async for change in broker.workers.watch()] == []
    running = await backend.worker()
    worker_id = running.worker.id
    assert await broker.workers.ttl() == pytest.approx(running.worker.heartbeat_ttl)
    seen: list[tuple[str, bytes | None] | None] = []
    async with asyncio.timeout(15):
        async for change in broker.workers.watch():
            seen.append(change)
            if change is None:
                await running.stop()  # its heartbeat is removed at once
            elif change[1] is None:
                break
    current = [change for change in seen[: seen.index(None)] if change is not None]
    assert [key for key, _ in current] == [worker_id]
    assert msgspec.json.decode(current[0][1] or b"", type=WorkerInfo).id == worker_id
    assert seen[-1] == (worker_id, None)


async def test_the_message_of_a_queued_job_is_read_back(backend: Backend) -> None:
    app = backend.app

    @app.task(queue="kept")
    async def later(ctx: Context) -> None: ...

    job = await later.enqueue()
    broker = await app.connect()
    stored = await broker.jobs.get("kept", job.id)
    assert stored is not None
    assert msgspec.json.decode(stored.data, type=JobMessage).task == later.name
    assert await broker.jobs.get("other", job.id) is None
    assert await broker.jobs.remove("kept", job.id)
    assert await broker.jobs.get("kept", job.id) is None
