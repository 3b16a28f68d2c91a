"""The in-memory backend with a `FakeClock` moved by hand: hours of backoffs, delays, ttls,
schedules and rate-limit windows, tested without sleeping and without a server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aioq import Aarq, ConfigError, Context, JobNotFoundError, JobState
from aioq.naming import Names
from aioq.testing import FakeClock, MemoryBroker, RunningWorker, start_worker

from ..helpers import eventually


async def settle() -> None:
    """Let the worker's tasks run until nothing moves for a moment (real time)."""
    await asyncio.sleep(0.05)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def broker(clock: FakeClock) -> MemoryBroker:
    return MemoryBroker(clock=clock)


@pytest.fixture
async def app(broker: MemoryBroker) -> AsyncIterator[Aarq]:
    application = Aarq()
    application.use_broker(broker)
    yield application
    await application.close()


@pytest.fixture
async def workers() -> AsyncIterator[list[RunningWorker]]:
    running: list[RunningWorker] = []
    yield running
    for worker in running:
        await worker.stop()


async def test_a_one_hour_backoff_without_sleeping(
    app: Aarq, clock: FakeClock, workers: list[RunningWorker]
) -> None:
    @app.task(retries=1, backoff=3600)
    async def flaky(ctx: Context) -> str:
        if ctx.attempt == 1:
            raise ConnectionError("the API is down")
        return "sent"

    began = time.monotonic()
    workers.append(await start_worker(app, ["default"]))
    job = await flaky.enqueue()
    await eventually(lambda: _state(job, JobState.RETRYING))
    record = await job.status()
    assert record.retry_at == clock.time() + 3600
    clock.advance(3599)
    await settle()
    assert (await job.status()).state is JobState.RETRYING
    clock.advance(1)
    assert await job.result(timeout=5) == "sent"
    assert (await job.status()).attempts == 2
    assert time.monotonic() - began < 5  # an hour of backoff, no hour of waiting


async def test_a_delayed_job_waits_for_its_time(
    app: Aarq, clock: FakeClock, workers: list[RunningWorker]
) -> None:
    @app.task
    async def remind(ctx: Context) -> float:
        return clock.time()

    workers.append(await start_worker(app, ["default"]))
    due = clock.time() + 86_400
    job = await remind.with_options(delay=timedelta(days=1)).enqueue()
    clock.advance(86_399)
    await settle()
    assert (await job.status()).state is JobState.DEFERRED
    clock.advance(1)
    assert await job.result(timeout=5) == due


async def test_ttl_counts_on_the_fake_clock(
    app: Aarq, clock: FakeClock, workers: list[RunningWorker]
) -> None:
    @app.task(ttl=60)
    async def fresh(ctx: Context) -> None: ...

    stale = await fresh.enqueue()
    clock.advance(61)
    kept = await fresh.enqueue()
    workers.append(await start_worker(app, ["default"]))
    await kept.result(timeout=5)
    assert await _state(stale, JobState.EXPIRED)


async def test_an_hourly_repeatable_fires_once_per_hour(
    app: Aarq, clock: FakeClock, workers: list[RunningWorker]
) -> None:
    ran: list[str] = []

    @app.task
    async def report(ctx: Context) -> None:
        ran.append(ctx.job_id)

    app.add_repeatable(report, every=timedelta(hours=1), name="hourly")
    workers.append(await start_worker(app, ["default"]))
    workers.append(await start_worker(app, ["default"]))  # two schedulers
    await settle()
    assert ran == []
    clock.advance(3600)
    await eventually(lambda: len(ran) == 1)
    clock.advance(3600)
    await eventually(lambda: len(ran) == 2)
    await settle()
    assert ran == ["cron-hourly-1893502800", "cron-hourly-1893506400"]  # 13:00 and 14:00 UTC


async def test_a_rate_limit_per_minute(
    app: Aarq, clock: FakeClock, workers: list[RunningWorker]
) -> None:
    ran: list[float] = []

    @app.task(queue="sms")
    async def text(ctx: Context) -> None:
        ran.append(clock.time())

    app.queue("sms", rate_limit=2, rate_interval=timedelta(minutes=1))
    await app.enqueue_many(text.prepare() for _ in range(5))
    workers.append(await start_worker(app, ["sms"]))
    await eventually(lambda: len(ran) == 2)
    await settle()
    assert len(ran) == 2
    clock.advance(60)
    await eventually(lambda: len(ran) == 4)
    clock.advance(60)
    await eventually(lambda: len(ran) == 5)


async def test_the_dedupe_window_ends_with_the_clock(app: Aarq, clock: FakeClock) -> None:
    @app.task
    async def charge(ctx: Context) -> None: ...

    assert not (await charge.with_options(job_id="order-1").enqueue()).duplicate
    clock.advance(119)
    assert (await charge.with_options(job_id="order-1").enqueue()).duplicate
    clock.advance(2)  # 121 s after the first: outside the 2-minute window
    assert not (await charge.with_options(job_id="order-1").enqueue()).duplicate


async def test_records_expire_after_keep_result(clock: FakeClock) -> None:
    app = Aarq()
    app.use_broker(MemoryBroker(clock=clock, keep_result=60))

    @app.task
    async def quick(ctx: Context) -> int:
        return 1

    running = await start_worker(app, ["default"])
    job = await quick.enqueue()
    assert await job.result(timeout=5) == 1
    clock.advance(61)
    with pytest.raises(JobNotFoundError):
        await job.status()
    await running.stop()


async def test_a_pause_with_an_end_resumes_on_the_fake_clock(
    app: Aarq, clock: FakeClock, workers: list[RunningWorker]
) -> None:
    @app.task
    async def noop(ctx: Context) -> float:
        return clock.time()

    workers.append(await start_worker(app, ["default"]))
    end = await app.pause_queue("default", until=timedelta(hours=1))
    assert end == datetime.fromtimestamp(clock.time(), UTC) + timedelta(hours=1)
    job = await noop.enqueue()
    await settle()
    assert (await job.status()).state is JobState.QUEUED
    clock.advance(3600)
    assert await job.result(timeout=5) == end.timestamp()


async def test_moving_fake_time_keeps_a_running_job_leased(
    app: Aarq, clock: FakeClock, workers: list[RunningWorker]
) -> None:
    release = asyncio.Event()
    starts: list[int] = []

    @app.task
    async def long(ctx: Context) -> None:
        starts.append(ctx.attempt)
        await release.wait()

    workers.append(await start_worker(app, ["default"]))
    job = await long.enqueue()
    await eventually(lambda: starts)
    clock.advance(3600)  # leases (ack_wait) run on real time
    await settle()
    release.set()
    await job.result(timeout=5)
    assert starts == [1]


async def test_auto_advance_runs_the_clock_when_something_waits() -> None:
    clock = FakeClock(auto_advance=0.01)
    app = Aarq()
    app.use_broker(MemoryBroker(clock=clock))
    began = clock.time()

    @app.task(retries=2, backoff=[600, 3600])
    async def flaky(ctx: Context) -> int:
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return ctx.attempt

    running = await start_worker(app, ["default"])
    assert await (await flaky.enqueue()).result(timeout=5) == 3
    assert clock.time() - began >= 4200
    await running.stop()
    await app.close()


async def test_heartbeats_list_the_live_workers(app: Aarq, broker: MemoryBroker) -> None:
    running = await start_worker(app, ["default"])
    assert [w.id for w in broker.live_workers()] == [running.worker.id]
    await running.stop()
    assert broker.live_workers() == []


async def test_admin_listings_run_on_memory(app: Aarq) -> None:
    running = await start_worker(app, ["default"])
    assert [q.name for q in await app.queues()] == ["default"]
    assert [w.info.id for w in await app.workers()] == [running.worker.id]
    await running.stop()
    assert await app.workers() == []


async def test_use_broker_only_while_unconnected(app: Aarq, broker: MemoryBroker) -> None:
    assert app.clock is broker.clock
    assert await app.connect() is broker
    with pytest.raises(ConfigError, match="before the app connects"):
        app.use_broker(MemoryBroker())
    await app.close()
    app.use_broker(None)  # back to NATS
    assert app.clock is not broker.clock


async def test_fake_clock_timers_and_sleep() -> None:
    clock = FakeClock(1_000_000.0)
    seen: list[tuple[str, float]] = []
    clock.call_later(5, lambda: seen.append(("five", clock.time())))
    clock.call_later(2, lambda: seen.append(("two", clock.time())))
    dropped = clock.call_later(3, lambda: seen.append(("three", clock.time())))
    dropped.cancel()
    assert clock.next_timer() == 2
    sleeper = asyncio.create_task(clock.sleep(4))
    await asyncio.sleep(0)
    clock.advance(10)
    await asyncio.wait_for(sleeper, 1)
    # Each timer runs with the clock at its own due time.
    assert seen == [("two", 1_000_002.0), ("five", 1_000_005.0)]
    assert clock.time() == 1_000_010.0
    clock.advance_to(datetime.fromtimestamp(1_000_070.0, UTC))
    assert clock.time() == 1_000_070.0
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2030, 1, 1))


async def _state(job: Any, state: JobState) -> bool:
    return bool((await job.status()).state is state)


async def test_configure_is_the_one_way_to_change_the_connection(
    app: Aarq, broker: MemoryBroker
) -> None:
    app.configure(names=Names("elsewhere"))
    assert app.prefix == "elsewhere"
    app.use_connection(servers="nats://127.0.0.1:1", prefix="again", token="t")
    assert (app.prefix, app.settings.servers, app.settings.token) == (
        "again",
        ["nats://127.0.0.1:1"],
        "t",
    )
    with pytest.raises(ConfigError, match="invalid prefix"):
        app.use_connection(prefix="bad prefix", token="changed")
    assert app.settings.token == "t"  # an invalid prefix changes nothing
    await app.connect()
    with pytest.raises(ConfigError, match=r"configure\(\) must be called before"):
        app.configure(names=Names("late"))
    await app.close()
