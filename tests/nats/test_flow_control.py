"""Flow control on a real server: rate limits (worker and queue), zero rate, dynamic
concurrency, pause/resume, `run_worker` and its cancellation, scanners."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client as NatsClient

from aioq import Aarq, BrokerError, Context, Worker, run_worker
from aioq.embedded import server_version

from ..conftest import WorkerFactory
from ..helpers import eventually


def most_in_window(starts: list[float], window: float) -> int:
    """Most starts in any window [t, t + window)."""
    ordered = sorted(starts)
    most, j = 0, 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        most = max(most, j - i)
    return most


# Consumer pause came with nats-server 2.11 (AIOQ_NATS_SERVER may point the tests at another).
SERVER_CAN_PAUSE = server_version() >= (2, 11, 0)
needs_pause = pytest.mark.skipif(not SERVER_CAN_PAUSE, reason="consumer pause needs 2.11+")

# Start times are taken inside the tasks, a few milliseconds after the limiter let each job
# through, and that delay varies on a busy machine. Windows a fifth shorter than the interval
# keep the check about the limiter, not about scheduling noise.
SLACK = 0.8


async def consumer_counts(nc: NatsClient, app: Aarq, queue: str = "default") -> tuple[int, int]:
    info = await nc.jetstream().consumer_info(app.names.jobs_stream, app.names.consumer(queue))
    return info.num_pending, info.num_ack_pending


async def test_worker_rate_limit_caps_starts_per_interval(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    starts: list[float] = []

    @app.task
    async def noop(ctx: Context) -> None:
        starts.append(time.monotonic())

    limit, interval, count = 40, 0.5, 240
    await app.enqueue_many(noop.prepare() for _ in range(count))
    await start_worker(concurrency=100, rate_limit=limit, rate_interval=interval)
    await eventually(lambda: len(starts) == count, timeout=20)

    assert most_in_window(starts, interval * SLACK) <= limit
    elapsed = max(starts) - min(starts)
    rate = (count - limit) / elapsed  # the first `limit` start as one burst
    print(f"worker rate limit {limit / interval:.0f}/s: measured {rate:.1f}/s over {count} jobs")
    assert rate >= 0.8 * limit / interval
    assert rate <= 1.1 * limit / interval


async def test_queue_rate_limit_holds_across_workers(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    starts: list[tuple[str, float]] = []

    @app.task(queue="email")
    async def send(ctx: Context) -> None:
        starts.append((ctx.worker_id, time.time()))

    limit, interval, count = 10, 0.5, 70
    app.queue("email", rate_limit=limit, rate_interval=interval)
    await app.enqueue_many(send.prepare() for _ in range(count))
    await start_worker(queues=["email"], concurrency=50)
    await start_worker(queues=["email"], concurrency=50)
    await eventually(lambda: len(starts) == count, timeout=20)

    times = [t for _, t in starts]
    assert most_in_window(times, interval * SLACK) <= limit
    rate = (count - limit) / (max(times) - min(times))
    print(f"queue rate limit {limit / interval:.0f}/s over 2 workers: measured {rate:.1f}/s")
    assert rate >= 0.7 * limit / interval


async def test_zero_rate_pauses_the_worker(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    ran: list[str] = []

    @app.task
    async def noop(ctx: Context) -> None:
        ran.append(ctx.job_id)

    worker = await start_worker(rate_limit=0)
    await app.enqueue_many(noop.prepare() for _ in range(3))
    await asyncio.sleep(1.0)
    assert ran == []
    assert await consumer_counts(nc, app) == (3, 0)  # not even fetched
    worker.set_rate_limit(None)
    await eventually(lambda: len(ran) == 3)


async def test_concurrency_changes_while_running(app: Aarq, start_worker: WorkerFactory) -> None:
    running: set[str] = set()
    spans: list[tuple[float, float]] = []
    release = asyncio.Event()

    @app.task
    async def hold(ctx: Context) -> None:
        running.add(ctx.job_id)
        began = time.monotonic()
        await release.wait()
        await asyncio.sleep(0.05)
        spans.append((began, time.monotonic()))
        running.discard(ctx.job_id)

    await app.enqueue_many(hold.prepare() for _ in range(16))
    worker = await start_worker(concurrency=1)
    await eventually(lambda: len(running) == 1)
    await asyncio.sleep(0.3)
    assert len(running) == 1

    worker.set_concurrency(4)
    await eventually(lambda: len(running) == 4)
    await asyncio.sleep(0.3)
    assert len(running) == 4

    worker.set_concurrency(2)
    shrunk = time.monotonic()
    release.set()
    await eventually(lambda: len(spans) == 16)
    later = [(a, b) for a, b in spans if a > shrunk]
    assert len(later) == 12
    most = max(sum(1 for a, b in later if a <= t < b) for t, _ in later)
    assert most <= 2
    assert worker.concurrency == 2
    with pytest.raises(ValueError, match="concurrency"):
        worker.set_concurrency(0)


@needs_pause
async def test_pause_and_resume_a_queue(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    ran: list[tuple[str, float]] = []

    @app.task
    async def noop(ctx: Context) -> None:
        ran.append((ctx.job_id, time.time()))

    worker = await start_worker()
    assert await app.queue_paused_until("default") is None
    assert await app.pause_queue("default") is None
    until = await app.queue_paused_until("default")
    assert until is not None
    assert until.year == 9999

    await app.enqueue_many(noop.prepare() for _ in range(3))
    await asyncio.sleep(0.8)
    assert ran == []
    # A worker starting meanwhile re-applies the consumer's settings: the pause stays.
    worker.stop()
    await start_worker()
    await asyncio.sleep(0.5)
    assert ran == []
    assert (await consumer_counts(nc, app))[0] == 3

    await app.resume_queue("default")
    assert await app.queue_paused_until("default") is None
    # Idle workers get the jobs at once, not when their waiting pull expires (5 s).
    await eventually(lambda: len(ran) == 3, timeout=3)

    # A pause with an end resumes by itself.
    end = await app.pause_queue("default", until=timedelta(seconds=1.5))
    assert end is not None
    await noop.enqueue()
    await eventually(lambda: len(ran) == 4, timeout=10)
    assert ran[-1][1] >= end.timestamp() - 0.05  # the server's clock is this machine's


async def test_pause_needs_a_recent_server(app: Aarq, start_worker: WorkerFactory) -> None:
    await start_worker()
    broker = await app.connect()
    server = broker.nc._current_server
    assert server is not None
    real = server.server_version
    if SERVER_CAN_PAUSE:
        server.server_version = "2.10.25"  # what a 2.10 server reports
    try:
        with pytest.raises(BrokerError, match=r"needs nats-server 2\.11 or newer.*runs 2\.10\."):
            await app.pause_queue("default")
        with pytest.raises(BrokerError, match=r"2\.11"):
            await app.resume_queue("default")
    finally:
        server.server_version = real
    with pytest.raises(ValueError, match="until must be in the future"):
        await app.pause_queue("default", until=datetime(2000, 1, 1, tzinfo=UTC))


async def test_run_worker_runs_until_cancelled_then_drains(app: Aarq, nc: NatsClient) -> None:
    started: list[str] = []
    finished: list[str] = []
    scans: list[float] = []

    @app.task
    async def slow(ctx: Context) -> None:
        started.append(ctx.job_id)
        await asyncio.sleep(0.5)
        finished.append(ctx.job_id)

    async def scan() -> None:
        scans.append(time.monotonic())

    @app.task
    async def tick(ctx: Context) -> None: ...

    app.add_repeatable(tick, every=1, name="tick")
    runner = asyncio.create_task(
        run_worker(
            app,
            queues=["default"],
            concurrency=3,
            repeatables=[],
            scan_interval=0.2,
            scanners=[(scan, 0.1)],
            heartbeat_interval=0.5,
        )
    )
    try:
        jobs = await app.enqueue_many(slow.prepare() for _ in range(3))
        await eventually(lambda: len(started) == 3 and len(scans) >= 1)
    finally:
        runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(15):
            await runner
    # Cancelled mid-job, it let every running job finish and settle before returning.
    assert sorted(finished) == sorted(job.id for job in jobs)

    async def settled() -> bool:
        return await consumer_counts(nc, app) == (0, 0)

    async with asyncio.timeout(5):  # and acknowledged them (the server applies acks async)
        while not await settled():  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.05)
    stopped_scans = len(scans)
    await asyncio.sleep(0.3)
    assert len(scans) == stopped_scans  # scanners died with the worker
    info = await nc.jetstream().stream_info(app.names.jobs_stream)
    assert info.state.messages == 0  # no tick fired: repeatables=[]


async def test_scanners_live_and_die_with_the_worker(app: Aarq) -> None:
    calls: list[str] = []

    async def good() -> None:
        calls.append("good")

    async def bad() -> None:
        calls.append("bad")
        raise RuntimeError("scanner failure")

    worker = Worker(app, heartbeat_interval=0.5, handle_signals=False, scheduler=False)
    worker.add_scanner(good, 0.05)
    worker.add_scanner(bad, timedelta(seconds=0.05), name="bad-one")
    with pytest.raises(ValueError, match="interval"):
        worker.add_scanner(good, 0)
    running = asyncio.create_task(worker.run())
    await eventually(lambda: calls.count("good") >= 3 and calls.count("bad") >= 3)
    with pytest.raises(ValueError, match="before the worker runs"):
        worker.add_scanner(good, 1)
    worker.stop()
    await running
    count = len(calls)
    await asyncio.sleep(0.2)
    assert len(calls) == count
