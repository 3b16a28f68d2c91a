"""Contract: time. Delayed jobs, repeatable ticks, rate limits and queue pauses; and what
only JetStream can do (marked ``nats_only``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import nats
import pytest

from aioq import Aarq, BrokerError, Context, JobState

from ..helpers import eventually
from .conftest import Backend

# Start times are taken inside the tasks, a few milliseconds after the limiter let each job
# through (on NATS, real time): windows a fifth shorter than the interval keep the check
# about the limiter, not about scheduling noise.
SLACK = 0.8


def most_in_window(starts: list[float], window: float) -> int:
    """Most starts in any window [t, t + window)."""
    ordered = sorted(starts)
    most, j = 0, 0
    for i, start in enumerate(ordered):
        while j < len(ordered) and ordered[j] < start + window:
            j += 1
        most = max(most, j - i)
    return most


async def test_delayed_jobs_run_when_due_never_early(backend: Backend) -> None:
    app = backend.app
    ran: dict[str, float] = {}

    @app.task
    async def later(ctx: Context) -> None:
        ran[ctx.job_id] = app.clock.time()

    start = app.clock.time()
    held_early = await later.with_options(delay=1.0).enqueue()
    assert (await held_early.status()).state is JobState.DEFERRED
    assert await app.job(held_early.id) == held_early
    await backend.worker()
    by_delay = await later.with_options(delay=0.8).enqueue()
    by_time = await later.with_options(run_at=datetime.fromtimestamp(start + 1.2, UTC)).enqueue()
    for job in (held_early, by_delay, by_time):
        await job.result(timeout=10)
    # 1 ms of margin: `run_at` datetimes hold microseconds, and clocks are floats.
    assert ran[held_early.id] >= start + 1.0 - 0.001
    assert ran[by_delay.id] >= start + 0.8 - 0.001
    assert ran[by_time.id] >= start + 1.2 - 0.001
    record = await by_time.status()
    assert record.started_at is not None
    assert record.started_at >= start + 1.2 - 0.001
    broker = await app.connect()
    assert await broker.held.counts("default", app.clock.time()) == (0, 0)


async def test_held_jobs_counts_due_and_not_yet_due(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def later(ctx: Context) -> None: ...

    start = app.clock.time()
    await later.with_options(delay=30).enqueue()
    await later.with_options(delay=60).enqueue()
    broker = await app.connect()
    assert await broker.held.counts("default", start) == (0, 2)
    assert await broker.held.counts("default", start + 45) == (1, 1)
    assert await broker.held.counts("other", start + 90) == (0, 0)
    assert await broker.jobs.backlog("default") == 0  # held jobs are not in the queue yet


async def test_a_repeatable_fires_once_per_tick_with_two_schedulers(backend: Backend) -> None:
    app = backend.app
    ran: list[str] = []

    @app.task
    async def beat(ctx: Context) -> None:
        ran.append(ctx.job_id)

    app.add_repeatable(beat, every=1, name="beat")
    first = await backend.worker(scan_interval=0.2)
    second = await backend.worker(scan_interval=0.2)
    await eventually(lambda: len(ran) >= 3, timeout=10)
    await first.stop()
    await second.stop()
    assert [job_id for job_id, n in Counter(ran).items() if n > 1] == []
    ticks = sorted(int(job_id.rsplit("-", 1)[1]) for job_id in ran)
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    schedulers = [w.worker.scheduler for w in (first, second)]
    assert sum(s.fired for s in schedulers if s is not None) >= len(ran)


async def test_a_queue_rate_limit_holds_across_workers(backend: Backend) -> None:
    app = backend.app
    starts: list[float] = []

    @app.task(queue="email")
    async def send(ctx: Context) -> None:
        starts.append(app.clock.time())

    limit, interval, count = 3, 0.5, 9
    app.queue("email", rate_limit=limit, rate_interval=interval)
    await app.enqueue_many(send.prepare() for _ in range(count))
    await backend.worker(["email"], concurrency=10)
    await backend.worker(["email"], concurrency=10)
    await eventually(lambda: len(starts) == count, timeout=15)
    assert most_in_window(starts, interval * SLACK) <= limit
    assert max(starts) - min(starts) >= 2 * interval * SLACK


async def test_a_worker_rate_limit(backend: Backend) -> None:
    app = backend.app
    starts: list[float] = []

    @app.task
    async def noop(ctx: Context) -> None:
        starts.append(app.clock.time())

    await app.enqueue_many(noop.prepare() for _ in range(6))
    worker = await backend.worker(concurrency=10, rate_limit=2, rate_interval=0.5)
    await eventually(lambda: len(starts) == 6, timeout=15)
    assert most_in_window(starts, 0.5 * SLACK) <= 2
    worker.worker.set_rate_limit(0)  # 0 starts nothing
    await noop.enqueue()
    await asyncio.sleep(0.5)
    assert len(starts) == 6
    worker.worker.set_rate_limit(None)
    await eventually(lambda: len(starts) == 7)


async def test_pause_and_resume_a_queue(backend: Backend) -> None:
    app = backend.app
    ran: list[float] = []

    @app.task
    async def noop(ctx: Context) -> None:
        ran.append(app.clock.time())

    with pytest.raises(BrokerError, match="no consumer"):
        await app.pause_queue("nobody")
    await backend.worker()
    assert await app.queue_paused_until("default") is None
    assert await app.pause_queue("default") is None
    until = await app.queue_paused_until("default")
    assert until is not None
    assert until.year == 9999
    await app.enqueue_many(noop.prepare() for _ in range(2))
    await asyncio.sleep(0.5)
    assert ran == []
    await app.resume_queue("default")
    assert await app.queue_paused_until("default") is None
    await eventually(lambda: len(ran) == 2, timeout=5)
    # A pause with an end resumes by itself.
    end = await app.pause_queue("default", until=timedelta(seconds=1))
    assert end is not None
    await noop.enqueue()
    await eventually(lambda: len(ran) == 3)
    assert ran[-1] >= end.timestamp() - 0.05


@pytest.mark.nats_only("a foreign client publishes over plain NATS; memory has no wire protocol")
async def test_a_job_published_by_a_foreign_client_runs(backend: Backend) -> None:
    app = backend.app
    greeted: list[tuple[str, str]] = []

    @app.task
    async def greet(ctx: Context, name: str) -> None:
        greeted.append((ctx.job_id, name))

    await backend.worker()
    assert backend.url is not None
    client = await nats.connect(backend.url)
    try:
        js = client.jetstream()
        await js.publish(f"{app.prefix}.jobs.default", b'{"task": "greet", "args": ["ada"]}')
    finally:
        await client.close()
    await eventually(lambda: greeted)
    [(job_id, name)] = greeted
    assert name == "ada"
    assert job_id.startswith("seq-")  # no id given: named after its stream sequence


@pytest.mark.nats_only(
    "a job held by a connection that is gone: the broker is another process only on NATS"
)
async def test_a_job_held_by_a_dead_connection_comes_back(backend: Backend) -> None:
    app = backend.app
    app.queue("leased", ack_wait=0.5)
    attempts: list[int] = []

    @app.task(queue="leased")
    async def once(ctx: Context) -> None:
        attempts.append(ctx.attempt)

    job = await once.enqueue()
    crashed = Aarq(backend.url or "", prefix=app.prefix, ack_wait=0.5)
    crashed.queue("leased", ack_wait=0.5)
    broker = await crashed.connect()
    source = await broker.jobs.open_source("leased", crashed.queue("leased"))
    assert len(await source.fetch_now(1)) == 1
    await crashed.close()  # gone without settling the job, like a killed process
    await backend.worker(["leased"])
    await job.result(timeout=10)
    assert attempts == [2]
