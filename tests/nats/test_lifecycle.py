"""Job lifecycle from Python: results, status, progress, events, hooks, abort, dead letters."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from aioq import (
    Aarq,
    Context,
    Event,
    Job,
    JobAbortedError,
    JobExpiredError,
    JobFailedError,
    JobNotFoundError,
    JobRecord,
    JobState,
    ResultTimeoutError,
)

from ..conftest import WorkerFactory
from ..helpers import eventually


@dataclass
class Size:
    width: int
    height: int


async def test_result_of_a_success_is_the_typed_return_value(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    @app.task
    async def measure(ctx: Context, w: int, h: int) -> Size:
        return Size(w, h)

    @app.task
    def total(ctx: Context, values: list[int]) -> dict[str, int]:
        return {"sum": sum(values)}

    await start_worker()
    job = await measure.enqueue(3, 4)
    assert await job.result(timeout=10) == Size(3, 4)
    assert await (await total.enqueue([1, 2, 3])).result(timeout=10) == {"sum": 6}
    status = await job.status()
    assert status.state is JobState.SUCCEEDED
    assert status.attempts == 1
    assert status.started_at is not None
    assert status.finished_at is not None
    assert status.finished_at >= status.started_at


async def test_result_of_each_failure_kind(app: Aarq, start_worker: WorkerFactory) -> None:
    @app.task(retries=0)
    async def broken(ctx: Context) -> None:
        raise KeyError("missing")

    @app.task(ttl=0.2)
    async def stale(ctx: Context) -> None: ...

    @app.task
    async def slow(ctx: Context) -> None:
        await asyncio.sleep(30)

    expired = await stale.enqueue()
    await asyncio.sleep(0.5)  # the job outlives its ttl before any worker runs
    worker = await start_worker()
    failed = await broken.enqueue()
    with pytest.raises(JobFailedError) as info:
        await failed.result(timeout=10)
    assert info.value.error_type == "KeyError"
    assert info.value.error_message == "'missing'"
    assert "raise KeyError" in info.value.remote_traceback
    assert info.value.job_id == failed.id
    with pytest.raises(JobExpiredError, match="expired before it started"):
        await expired.result(timeout=10)
    running = await slow.enqueue()
    with pytest.raises(ResultTimeoutError) as timeout:
        await running.result(timeout=0.3)
    assert isinstance(timeout.value, TimeoutError)
    assert await running.abort()
    with pytest.raises(JobAbortedError):
        await running.result(timeout=10)
    assert worker.stats.failed == 2


async def test_status_through_every_transition(app: Aarq, start_worker: WorkerFactory) -> None:
    gate = asyncio.Event()
    runs = 0

    @app.task(retries=1, backoff=0.5)
    async def flaky(ctx: Context) -> str:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("first try fails")
        await gate.wait()
        return "done"

    job = await flaky.enqueue()
    queued = await job.status()
    assert (queued.state, queued.task, queued.queue) == (JobState.QUEUED, "flaky", "default")
    await start_worker()

    async def state() -> JobState:
        return (await job.status()).state

    seen: list[JobState] = []

    async def track(until: JobState) -> None:
        async with asyncio.timeout(10):
            while not seen or seen[-1] is not until:
                current = await state()
                if not seen or seen[-1] is not current:
                    seen.append(current)
                await asyncio.sleep(0.02)

    await track(JobState.RETRYING)
    retrying = await job.status()
    assert retrying.attempts == 1
    assert retrying.error is not None
    assert retrying.error.message == "first try fails"
    assert retrying.retry_at is not None
    await track(JobState.RUNNING)
    assert (await job.status()).attempts == 2
    gate.set()
    assert await job.result(timeout=10) == "done"
    assert await state() is JobState.SUCCEEDED
    with pytest.raises(JobNotFoundError):
        await app.job("never-enqueued")


async def test_app_job_rebuilds_a_handle_from_an_id(app: Aarq, start_worker: WorkerFactory) -> None:
    @app.task(queue="q")
    async def double(ctx: Context, n: int) -> int:
        return 2 * n

    job = await double.enqueue(21)
    queued = await app.job(job.id)
    assert (queued.queue, (await queued.status()).state) == ("q", JobState.QUEUED)
    await start_worker(queues=["q"])
    assert await (await app.job(job.id)).result(timeout=10) == 42
    with pytest.raises(JobNotFoundError, match="no job 'nope'"):
        await app.job("nope")


async def test_progress_is_seen_by_another_client(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    release = asyncio.Event()

    @app.task
    async def resize(ctx: Context) -> None:
        for step in range(1, 200):
            await ctx.progress(step / 400, "resizing")  # a tight loop: throttled
        await ctx.progress(0.5, "halfway")
        await release.wait()

    events: list[Event] = []

    async def on_event(msg: Msg) -> None:
        events.append(msgspec.json.decode(msg.data, type=Event))

    sub = await nc.subscribe(app.names.event_subject("default", "progress"), cb=on_event)
    await start_worker()
    job = await resize.enqueue()
    kv = await nc.jetstream().key_value(app.names.results_bucket)

    async def record() -> JobRecord:
        entry = await kv.get(job.id)
        assert entry.value is not None
        return msgspec.json.decode(entry.value, type=JobRecord)

    deadline = time.monotonic() + 10
    while (await record()).progress != 0.5:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    current = await record()
    assert (current.state, current.progress_message) == (JobState.RUNNING, "halfway")
    assert (await job.status()).progress == 0.5
    await eventually(lambda: any(e.message == "halfway" for e in events))
    assert len(events) < 20  # 200 calls in a tight loop, few updates
    release.set()
    await job.result(timeout=10)
    await sub.unsubscribe()
    with pytest.raises(ValueError, match=r"between 0\.0 and 1\.0"):
        await Context.progress(_ctx_stub(app), 1.5)


def _ctx_stub(app: Aarq) -> Context:
    from datetime import UTC, datetime

    return Context(
        app=app,
        job_id="x",
        task="t",
        queue="q",
        attempt=1,
        max_attempts=1,
        enqueued_at=datetime.now(UTC),
        worker_id="w",
    )


async def test_event_sequence_of_a_job_that_retries_twice_then_succeeds(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    @app.task(retries=3, backoff=0.05)
    async def third_time(ctx: Context) -> str:
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} fails")
        return "ok"

    events: list[tuple[str, str]] = []

    async def on_event(msg: Msg) -> None:
        event = msgspec.json.decode(msg.data)  # plain JSON, as any client sees it
        events.append((msg.subject.rsplit(".", 1)[-1], event["kind"]))

    sub = await nc.subscribe(f"{app.prefix}.events.>", cb=on_event)
    await nc.flush()
    await start_worker()
    job = await third_time.enqueue()
    assert await job.result(timeout=10) == "ok"
    await eventually(lambda: len(events) >= 7)
    await sub.unsubscribe()
    kinds = [kind for kind, _ in events]
    assert kinds == [
        "enqueued",
        "started",
        "retrying",
        "started",
        "retrying",
        "started",
        "succeeded",
    ]
    assert all(subject_kind == kind for subject_kind, kind in events)


async def test_app_events_iterates_live_events(app: Aarq, start_worker: WorkerFactory) -> None:
    @app.task(queue="watched")
    async def ping(ctx: Context) -> None: ...

    await app.connect()
    received: list[Event] = []

    async def listen() -> None:
        async for event in app.events(queue="watched", kinds=["succeeded"]):
            received.append(event)
            return

    listener = asyncio.create_task(listen())
    await start_worker(queues=["watched"])
    pings: list[str] = []

    async def heard() -> bool:  # `app.events` subscribes when first iterated: until it hears
        pings.append((await ping.enqueue()).id)
        await asyncio.wait([listener], timeout=0.5)
        return listener.done()

    await eventually(heard)
    [event] = received
    assert (event.kind, event.task) == ("succeeded", "ping")
    assert event.id in pings
    assert event.duration is not None


async def test_hooks_run_in_order_and_their_errors_are_handled(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    calls: list[str] = []

    @app.before_job
    async def first(ctx: Context) -> None:
        calls.append(f"before1:{ctx.task}:{ctx.attempt}")

    @app.before_job
    async def second(ctx: Context) -> None:
        calls.append("before2")
        if ctx.task == "guarded" and ctx.attempt == 1:
            raise PermissionError("not yet")

    @app.after_job
    async def after(ctx: Context, record: JobRecord) -> None:
        calls.append(f"after:{record.state.value}")

    @app.after_job
    async def noisy(ctx: Context, record: JobRecord) -> None:
        raise RuntimeError("after hooks cannot break a job")

    @app.task(retries=1, backoff=0.05)
    async def guarded(ctx: Context) -> int:
        calls.append("task")
        return 7

    await start_worker()
    assert await (await guarded.enqueue()).result(timeout=10) == 7
    await eventually(lambda: calls.count("after:succeeded") == 1)
    assert calls == [
        "before1:guarded:1",
        "before2",
        "after:retrying",
        "before1:guarded:2",
        "before2",
        "task",
        "after:succeeded",
    ]


async def test_abort_a_queued_job(app: Aarq, start_worker: WorkerFactory, nc: NatsClient) -> None:
    ran: list[str] = []

    @app.task
    async def work(ctx: Context, name: str) -> None:
        ran.append(name)

    doomed = await work.enqueue("doomed")
    kept = await work.enqueue("kept")
    assert await doomed.abort()
    assert (await doomed.status()).state is JobState.ABORTED
    await start_worker()
    await kept.result(timeout=10)
    assert ran == ["kept"]
    with pytest.raises(JobAbortedError):
        await doomed.result(timeout=1)
    assert not await doomed.abort()  # already over
    assert not await kept.abort()


async def test_abort_a_running_job_cancels_it_within_a_second(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    started = asyncio.Event()
    cancelled: list[float] = []

    @app.task(retries=5)
    async def endless(ctx: Context) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(time.monotonic())
            raise

    worker = await start_worker()
    job = await endless.enqueue()
    async with asyncio.timeout(10):
        await started.wait()
    asked = time.monotonic()
    assert await job.abort()
    await eventually(lambda: cancelled, timeout=5)
    assert cancelled[0] - asked < 1.0
    with pytest.raises(JobAbortedError):
        await job.result(timeout=5)
    assert (await job.status()).state is JobState.ABORTED
    # Never retried: the message is gone from the stream and the slot is free.
    info = await nc.jetstream().stream_info(app.names.jobs_stream)
    assert info.state.messages == 0
    await eventually(lambda: worker.active == 0)


async def test_keep_result_zero_keeps_no_record(
    nats_url: str, prefix: str, start_worker: WorkerFactory
) -> None:
    app = Aarq(nats_url, prefix=prefix + "k", keep_result=0)

    @app.task
    async def quick(ctx: Context) -> int:
        return 1

    @app.task(retries=1, backoff=0.05)
    async def slow_then_retried(ctx: Context) -> int:
        await asyncio.sleep(0.2)  # long enough for its running record to be stored
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return 2

    async with app:
        worker = await start_worker(app)
        jobs = [await quick.enqueue(), await slow_then_retried.enqueue()]
        await eventually(lambda: worker.stats.processed == 2, timeout=10)

        async def gone(job: Job[Any]) -> bool:
            try:
                await job.status()
            except JobNotFoundError:
                return True
            return False

        deadline = time.monotonic() + 5
        for job in jobs:
            while not await gone(job):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        worker.stop()
        await eventually(lambda: not worker.ready)
        js = (await app.connect()).js
        for stream in (app.names.jobs_stream, app.names.dead_stream, f"KV_{prefix}k-results"):
            await js.delete_stream(stream)


async def test_abort_a_deferred_job(app: Aarq, start_worker: WorkerFactory) -> None:
    ran: list[str] = []

    @app.task
    async def later(ctx: Context, name: str) -> None:
        ran.append(name)

    await start_worker()
    doomed = await later.with_options(delay=1.0).enqueue("doomed")
    kept = await later.with_options(delay=1.0).enqueue("kept")
    assert (await doomed.status()).state is JobState.DEFERRED
    assert await doomed.abort()
    assert (await doomed.status()).state is JobState.ABORTED
    await kept.result(timeout=15)  # due after the aborted one: it would have run by now
    assert ran == ["kept"]
    with pytest.raises(JobAbortedError):
        await doomed.result(timeout=1)
