"""Contract: a job's life seen from the client. Status, events, aborts, dead-letter retry and
purge, results retention, leases, and a worker's graceful stop."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from aioq import Context, JobAbortedError, JobFailedError, JobNotFoundError, JobState
from aioq.admin import EventStream
from aioq.wire import Event

from ..helpers import eventually
from .conftest import Backend


async def test_status_transitions_and_the_event_sequence(backend: Backend) -> None:
    app = backend.app
    release = asyncio.Event()

    @app.task(retries=1, backoff=0.2)
    async def flaky(ctx: Context) -> str:
        if ctx.attempt == 1:
            raise ConnectionError("first attempt fails")
        await ctx.progress(0.5, "halfway")
        await release.wait()
        return "done"

    events: list[Event] = []

    async def listen(stream: EventStream) -> None:
        async for event in stream:
            events.append(event)
            if event.kind == "succeeded":
                return

    async with EventStream(app, queue="default") as stream:
        listener = asyncio.create_task(listen(stream))
        job = await flaky.enqueue()
        queued = await job.status()
        assert (queued.state, queued.task, queued.queue) == (JobState.QUEUED, "flaky", "default")
        await backend.worker()
        seen: list[JobState] = []

        async def running() -> bool:
            state = (await job.status()).state
            if not seen or seen[-1] is not state:
                seen.append(state)
            return state is JobState.RUNNING and (await job.status()).attempts == 2

        await eventually(running)
        assert JobState.SUCCEEDED not in seen
        record = await job.status()
        assert (record.progress, record.progress_message) == (0.5, "halfway")
        release.set()
        assert await job.result(timeout=10) == "done"
        async with asyncio.timeout(10):
            await listener
    assert [e.kind for e in events] == [
        "enqueued",
        "started",
        "retrying",
        "started",
        "progress",
        "succeeded",
    ]
    assert {e.id for e in events} == {job.id}
    retrying = events[2]
    assert retrying.attempt == 1
    assert retrying.delay == pytest.approx(0.2)
    assert retrying.error is not None
    assert retrying.error.message == "first attempt fails"
    assert (await job.status()).state is JobState.SUCCEEDED


async def test_app_events_follows_one_queue(backend: Backend) -> None:
    app = backend.app

    @app.task(queue="watched")
    async def ping(ctx: Context) -> None: ...

    @app.task(queue="ignored")
    async def pong(ctx: Context) -> None: ...

    received: list[Event] = []

    async def listen() -> None:
        async for event in app.events(queue="watched", kinds=["succeeded"]):
            received.append(event)
            return

    listener = asyncio.create_task(listen())
    await backend.worker(["watched", "ignored"])
    pings: list[str] = []

    async def heard() -> bool:  # `app.events` subscribes when first iterated: until it hears
        await (await pong.enqueue()).result(timeout=10)
        pings.append((await ping.enqueue()).id)
        await asyncio.wait([listener], timeout=0.5)
        return listener.done()

    await eventually(heard)
    [event] = received
    assert (event.kind, event.queue) == ("succeeded", "watched")
    assert event.id in pings


async def test_abort_a_queued_a_deferred_and_a_running_job(backend: Backend) -> None:
    app = backend.app
    ran: list[str] = []
    started = asyncio.Event()
    cancelled: list[str] = []

    @app.task
    async def work(ctx: Context, name: str) -> None:
        ran.append(name)

    @app.task(retries=5)
    async def endless(ctx: Context) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(ctx.job_id)
            raise

    queued = await work.enqueue("queued")
    deferred = await work.with_options(delay=0.5).enqueue("deferred")
    kept = await work.enqueue("kept")
    assert (await deferred.status()).state is JobState.DEFERRED
    assert await queued.abort()
    assert await deferred.abort()
    for job in (queued, deferred):
        assert (await job.status()).state is JobState.ABORTED
    worker = await backend.worker()
    await kept.result(timeout=10)
    running = await endless.enqueue()
    async with asyncio.timeout(10):
        await started.wait()
    assert await running.abort()
    for job in (queued, deferred, running):
        with pytest.raises(JobAbortedError):
            await job.result(timeout=5)
    assert cancelled == [running.id]
    assert (await running.status()).state is JobState.ABORTED
    await backend.pass_time(1.0)  # the deferred job's time
    later = await work.enqueue("later")
    await later.result(timeout=10)
    assert ran == ["kept", "later"]  # never retried, never released
    assert not await kept.abort()  # over already
    await eventually(lambda: worker.worker.active == 0)
    broker = await app.connect()
    assert await broker.jobs.backlog("default") == 0


async def test_dead_letters_retry_and_purge(backend: Backend) -> None:
    app = backend.app
    fixed = False

    @app.task(retries=0)
    async def charge(ctx: Context, cents: int) -> int:
        if not fixed:
            raise ValueError(f"bad amount {cents}")
        return cents

    @app.task(retries=0)
    async def other(ctx: Context) -> None:
        raise KeyError("x")

    await backend.worker()
    jobs = [await charge.enqueue(n) for n in (1, 2)]
    odd = await other.enqueue()
    for job in [*jobs, odd]:
        with pytest.raises(JobFailedError):
            await job.result(timeout=10)
    assert await app.dead.counts() == {"default": 3}
    entries = await app.dead.list("default")
    assert sorted(e.letter.id for e in entries) == sorted(j.id for j in [*jobs, odd])
    by_type = await app.dead.list("default", error_type="ValueError")
    assert sorted(e.letter.id for e in by_type) == sorted(j.id for j in jobs)
    assert [e.letter.id for e in await app.dead.list("default", task="other")] == [odd.id]
    assert await app.dead.list("default", since=time.time() + 60) == []
    one = await app.dead.get("default", jobs[0].id)
    assert one.letter.error is not None
    assert one.letter.error.message == "bad amount 1"

    fixed = True
    retried = await app.dead.retry("default", error_type="ValueError")
    assert sorted(j.id for j in retried) == sorted(j.id for j in jobs)
    assert sorted([await j.result(timeout=10) for j in retried]) == [1, 2]
    record = await retried[0].status()
    assert record.state is JobState.SUCCEEDED
    assert record.retry_of is not None  # the link to the dead letter it came from
    assert [e.letter.id for e in await app.dead.list("default")] == [odd.id]
    with pytest.raises(JobNotFoundError):
        await app.dead.retry("default", ["no-such-job"])
    assert await app.dead.purge("default") == 1
    assert await app.dead.list("default") == []
    assert await app.dead.counts() == {}


async def test_keep_result_zero_keeps_no_record(backend: Backend) -> None:
    app = backend.other_app(keep_result=0)

    @app.task
    async def quick(ctx: Context) -> int:
        return 7

    job = await quick.enqueue()
    worker = await backend.worker(app=app)
    await eventually(lambda: worker.stats.processed == 1)

    async def gone() -> bool:
        try:
            await job.status()
        except JobNotFoundError:
            return True
        return False

    await eventually(gone, timeout=5)


async def test_a_job_whose_lease_runs_out_is_delivered_again(backend: Backend) -> None:
    app = backend.app
    app.queue("leased", ack_wait=0.5)
    attempts: list[int] = []

    @app.task(queue="leased")
    async def once(ctx: Context) -> int:
        attempts.append(ctx.attempt)
        return ctx.attempt

    job = await once.enqueue()
    broker = await app.connect()
    # A worker that takes the job and goes silent (it died): no ack, no in-progress.
    silent = await broker.jobs.open_source("leased", app.queue("leased"))
    [taken] = await silent.fetch_now(1)
    assert (taken.attempt, await broker.jobs.backlog("leased")) == (1, 1)
    await backend.worker(["leased"])
    assert await job.result(timeout=10) == 2
    assert attempts == [2]
    await silent.close()


async def test_a_running_job_keeps_its_lease(backend: Backend) -> None:
    app = backend.app
    app.queue("long", ack_wait=0.5)
    starts: list[int] = []

    @app.task(queue="long")
    async def crunch(ctx: Context) -> None:
        starts.append(ctx.attempt)
        await asyncio.sleep(1.6)  # three leases long

    worker = await backend.worker(["long"], concurrency=3)
    await (await crunch.enqueue()).result(timeout=10)
    assert starts == [1]
    assert worker.stats.processed == 1


async def test_max_ack_pending_caps_jobs_out_over_all_workers(backend: Backend) -> None:
    app = backend.app
    app.queue("capped", max_ack_pending=2)
    running = 0
    most = 0
    ran: list[str] = []

    @app.task(queue="capped")
    async def hold(ctx: Context) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        ran.append(ctx.job_id)
        await asyncio.sleep(0.1)
        running -= 1

    jobs = await app.enqueue_many(hold.prepare() for _ in range(6))
    # Workers that could take more than the cap: on NATS the server holds their fetches
    # while the cap is reached, and the jobs such a fetch brings must still start at once
    # (not after their leases ran out, which would run them twice).
    for _ in range(2):
        await backend.worker(["capped"], concurrency=2)
    for job in jobs:
        await job.result(timeout=10)
    assert most == 2
    assert sorted(ran) == sorted(j.id for j in jobs)  # each job ran once


async def test_a_graceful_stop_finishes_in_flight_jobs(backend: Backend) -> None:
    app = backend.app

    @app.task(queue="reports")
    async def export(ctx: Context, n: int) -> int:
        await asyncio.sleep(0.3)
        return n

    worker = await backend.worker(["reports"], concurrency=2)
    jobs = [await export.enqueue(n) for n in range(5)]
    report = await worker.simulate_shutdown(jobs, running_at_least=2)
    report.assert_clean()  # the running jobs finished, nothing was lost
    assert (report.in_flight_at_stop, len(report.finished), len(report.waiting)) == (2, 2, 3)
    await backend.worker(["reports"], concurrency=5)
    assert [await job.result(timeout=10) for job in jobs] == list(range(5))


async def test_enqueue_many_announces_each_stored_job_once(backend: Backend) -> None:
    app = backend.app

    @app.task(queue="bulk")
    async def item(ctx: Context, n: int) -> None: ...

    await item.with_options(job_id="old").enqueue(0)
    heard: list[str] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        async for event in app.events(queue="bulk", kinds=["enqueued"]):
            if event.id.startswith("probe-"):
                subscribed.set()
            else:
                heard.append(event.id)

    listener = asyncio.create_task(listen())

    async def probed() -> bool:  # `app.events` subscribes when first iterated
        await item.with_options(job_id=f"probe-{uuid.uuid4().hex}").enqueue(0)
        await asyncio.wait([asyncio.ensure_future(subscribed.wait())], timeout=0.2)
        return subscribed.is_set()

    try:
        await eventually(probed)
        prepared = [item.prepare(n) for n in range(30)]
        prepared.append(item.with_options(job_id="old").prepare(0))
        jobs = await app.enqueue_many(prepared)
        fresh = [job.id for job in jobs if not job.duplicate]
        await eventually(lambda: len(heard) >= len(fresh))
        assert heard == fresh
    finally:
        listener.cancel()
