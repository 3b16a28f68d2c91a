"""Delayed and repeatable jobs on a real server: precision, restarts, several schedulers,
cron with time zones, and the missed-tick policy."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from aioq import Aarq, Context, JobState, Scheduler, Worker, run_scheduler
from aioq._nats import NatsBroker
from aioq.embedded import EmbeddedNats
from aioq.testing import RunningWorker
from aioq.testing import start_worker as start_running_worker
from aioq.wire import DeadReason, JobMessage

from ..conftest import WorkerFactory
from ..helpers import eventually


async def subjects(nc: NatsClient, app: Aarq, pattern: str) -> dict[str, int]:
    """Messages per subject of the app's jobs stream matching `pattern`."""
    info = await nc.jetstream().stream_info(app.names.jobs_stream, subjects_filter=pattern)
    return dict(info.state.subjects or {})


async def queued_ids(nc: NatsClient, app: Aarq, queue: str) -> list[str]:
    """The ids of the jobs stored on `queue`, oldest first."""
    js = nc.jetstream()
    ids: list[str] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(
                app.names.jobs_stream, seq=seq, subject=app.names.job_subject(queue), next=True
            )
        except NotFoundError:
            return ids
        assert msg.data is not None
        ids.append(msgspec.json.decode(msg.data, type=JobMessage).id or "")
        seq = (msg.seq or seq) + 1


async def no_subjects(nc: NatsClient, app: Aarq, pattern: str) -> bool:
    return not await subjects(nc, app, pattern)


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel `task` (again, if nats-py loses the cancellation on Python 3.11) until it ends."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1.0)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


@pytest.fixture
async def run_workers() -> AsyncIterator[list[RunningWorker]]:
    """Workers a test starts and stops itself; any left running are stopped at teardown."""
    running: list[RunningWorker] = []
    yield running
    for started in running:
        await started.stop(timeout=15)


async def start(running: list[RunningWorker], app: Aarq) -> Worker:
    started = await start_running_worker(app, ["default"], concurrency=10)
    running.append(started)
    return started.worker


async def stop(running: list[RunningWorker], worker: Worker) -> None:
    for started in [r for r in running if r.worker is worker]:
        await started.stop(timeout=15)
        running.remove(started)


# -- delayed jobs ----------------------------------------------------------------------------


async def test_delayed_jobs_start_on_time_and_never_early(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    lateness: dict[str, list[float]] = {}

    @app.task
    async def due_at(ctx: Context, due: float) -> None:
        lateness.setdefault(ctx.job_id, []).append(time.time() - due)

    # Two workers, so two schedulers race for every held job.
    await start_worker(concurrency=30)
    await start_worker(concurrency=30)
    now = time.time()
    prepared = []
    for i in range(80):  # 0.5 s to 2.4 s from now, four jobs per due time
        due = now + 0.5 + (i % 20) * 0.1
        prepared.append(due_at.with_options(run_at=datetime.fromtimestamp(due, UTC)).prepare(due))
    jobs = await app.enqueue_many(prepared)
    by_delay = [await due_at.with_options(delay=1.0).enqueue(time.time() + 1.0) for _ in range(5)]

    # Held in JetStream (not in a worker's memory) until due.
    held = await subjects(nc, app, app.names.sched_subject())
    checked = time.time()
    later = [job.id for job, p in zip(jobs, prepared, strict=True) if p.run_at > checked + 0.2]
    assert later
    assert {app.names.sched_subject("default", job_id) for job_id in later} <= set(held)

    await eventually(lambda: len(lateness) == 85, timeout=20)
    assert all(len(runs) == 1 for runs in lateness.values()), "a delayed job ran twice"
    assert {job.id for job in by_delay} <= set(lateness)
    values = [runs[0] for runs in lateness.values()]
    assert min(values) >= 0, f"a job started {-min(values):.4f}s before its time"
    p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
    print(f"delayed job lateness over {len(values)} jobs: p50 {p50:.4f}s p99 {p99:.4f}s")
    assert p99 < 1.0
    # Every held message was acknowledged once its job was moved.
    await eventually(lambda: no_subjects(nc, app, app.names.sched_subject()))


async def test_delayed_jobs_survive_a_worker_restart(
    app: Aarq, nc: NatsClient, run_workers: list[tuple[Worker, asyncio.Task[None]]]
) -> None:
    runs: list[tuple[str, float]] = []

    @app.task
    async def due_at(ctx: Context, due: float) -> None:
        runs.append((ctx.job_id, time.time() - due))

    first = await start(run_workers, app)
    due = time.time() + 2.0
    jobs = [
        await due_at.with_options(run_at=datetime.fromtimestamp(due, UTC)).enqueue(due)
        for _ in range(5)
    ]
    await eventually(lambda: _in_hand(nc.jetstream(), app, 5), what="the scheduler holding them")
    await stop(run_workers, first)
    await asyncio.sleep(due + 0.5 - time.time())  # due passes with no worker running
    assert runs == []
    assert len(await subjects(nc, app, app.names.sched_subject())) == 5

    await start(run_workers, app)
    await eventually(lambda: len(runs) == 5)
    assert sorted(job_id for job_id, _ in runs) == sorted(job.id for job in jobs)
    assert all(late >= 0 for _, late in runs)


async def test_delayed_jobs_survive_a_server_restart(own_server: EmbeddedNats) -> None:
    server = own_server
    app = Aarq(server.url, prefix="restart", ack_wait=2.0)
    runs: list[tuple[str, float]] = []

    @app.task
    async def due_at(ctx: Context, due: float) -> None:
        runs.append((ctx.job_id, time.time() - due))

    worker = await start_running_worker(app, ["default"])
    try:
        now = time.time()
        during, after = now + 1.2, now + 4.0  # due while the server is down / after it is back
        ids = []
        for due in [during] * 3 + [after] * 3:
            job = await due_at.with_options(run_at=datetime.fromtimestamp(due, UTC)).enqueue(due)
            ids.append(job.id)
        broker = await app.connect()
        assert isinstance(broker, NatsBroker)
        await eventually(lambda: _in_hand(broker.js, app, 6), what="the scheduler holding them")
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(1.8)
        assert runs == []
        await asyncio.to_thread(server.start)
        await eventually(lambda: len(runs) == 6, timeout=20)
        assert Counter(job_id for job_id, _ in runs) == Counter(ids)
        assert all(late >= 0 for _, late in runs)
    finally:
        await worker.stop(timeout=15)


async def test_a_scheduler_alone_moves_delayed_jobs(app: Aarq, nc: NatsClient) -> None:
    @app.task
    async def later(ctx: Context) -> None: ...

    await later.with_options(delay=0.5).enqueue()
    queued = app.names.job_subject("default")
    assert await subjects(nc, app, queued) == {}
    runner = asyncio.create_task(run_scheduler(app, repeatables=[]))

    async def moved() -> bool:
        return await subjects(nc, app, queued) == {queued: 1}

    await eventually(moved)
    await eventually(lambda: no_subjects(nc, app, app.names.sched_subject()))
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert app.connected  # it did not open the connection, so it leaves it open


# -- repeatable jobs -------------------------------------------------------------------------


async def test_cron_in_a_time_zone_fires_on_its_ticks(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    fired: list[tuple[str, float]] = []

    # Every 2 seconds (croniter's sixth field), evaluated in India's +05:30 zone.
    @app.cron("* * * * * */2", tz="Asia/Kolkata", name="kolkata")
    async def beat(ctx: Context) -> None:
        fired.append((ctx.job_id, time.time()))

    worker = await start_worker()
    assert worker.scheduler is not None
    await eventually(lambda: len(fired) >= 2, timeout=10)
    for job_id, started in fired:
        name, _, tick = job_id.rpartition("-")
        assert name == "cron-kolkata"
        assert int(tick) % 2 == 0
        assert 0 <= started - int(tick) < 1.0
    assert len({job_id for job_id, _ in fired}) == len(fired)


async def test_missed_tick_policies(app: Aarq, nc: NatsClient) -> None:
    @app.task
    async def hourly(ctx: Context, which: str) -> None: ...

    for policy in ("latest", "all", "skip"):
        app.add_repeatable(hourly, every=3600, args=[policy], name=policy, missed=policy)
    app.add_repeatable(hourly, every=3600, args=["new"], name="new")

    # A clock at half past an hour; every scheduler was down for the last three hourly ticks.
    start = time.time()
    now = (math.floor(start / 3600) + 10) * 3600 + 1800.0

    def clock() -> float:
        return now + time.time() - start

    latest_tick = now - 1800
    missed = [latest_tick - 7200, latest_tick - 3600, latest_tick]
    control = (await app.connect()).control
    for policy in ("latest", "all", "skip"):
        await control.record_tick(policy, latest_tick - 3 * 3600)

    async def fired() -> set[str]:
        return set(await queued_ids(nc, app, "default"))

    expected = {f"cron-latest-{int(latest_tick)}"} | {f"cron-all-{int(t)}" for t in missed}
    for _ in range(2):  # a second scheduler finds the ticks settled and fires nothing more
        scheduler = Scheduler(app, delayed=False, clock=clock)
        task = asyncio.create_task(scheduler.run())
        try:
            await eventually(lambda: scheduler.ready)  # noqa: B023 - awaited in this iteration

            async def all_fired() -> bool:
                return await fired() == expected

            await eventually(all_fired)
            await asyncio.sleep(0.5)  # and nothing else comes
            assert await fired() == expected
        finally:
            await cancel(task)
    assert await control.last_tick("latest") == latest_tick
    assert await control.last_tick("all") == latest_tick
    assert await control.last_tick("skip") == latest_tick - 3 * 3600
    assert await control.last_tick("new") is None


# -- far-future and unreadable due times ---------------------------------------------------


async def test_a_job_due_in_300_years_stays_held_at_no_cost(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    @app.task
    async def someday(ctx: Context) -> None: ...

    await start_worker()
    # 300 years in nanoseconds is beyond the int64 a nak delay is kept in on the server.
    job = await someday.with_options(delay=300 * 365.25 * 86400).enqueue()
    js = nc.jetstream()

    async def deliveries() -> int:
        info = await js.consumer_info(app.names.jobs_stream, app.names.scheduler_consumer)
        return info.delivered.consumer_seq

    async def handed_back() -> bool:  # delivered once, and nak'd: no longer in a scheduler's hands
        info = await js.consumer_info(app.names.jobs_stream, app.names.scheduler_consumer)
        return info.delivered.consumer_seq >= 1 and info.num_ack_pending == 1

    await eventually(handed_back)
    cpu = time.process_time()
    await asyncio.sleep(1.5)  # an observation window: what happens during it is counted
    cpu = time.process_time() - cpu
    assert await deliveries() == 1, "the held job keeps coming back"
    print(f"CPU over 1.5 s with a job held for 300 years: {cpu:.3f}s")
    assert (await job.status()).state is JobState.DEFERRED
    held = (await app.connect()).held
    assert await held.counts("default", time.time()) == (0, 1)


@pytest.mark.parametrize(
    ("run_at", "why"),
    [
        ("inf", "not a finite time"),
        ("nan", "not a finite time"),
        ("next tuesday", "neither unix seconds nor an RFC 3339 time"),
        ("10000-01-01T00:00:00Z", "neither unix seconds nor an RFC 3339 time"),
        ("1e300", "after 9999-12-31T23:59:59Z"),
    ],
)
async def test_a_foreign_held_job_with_a_bad_run_at_is_dead_lettered_once(
    app: Aarq,
    start_worker: WorkerFactory,
    nc: NatsClient,
    caplog: pytest.LogCaptureFixture,
    run_at: str,
    why: str,
) -> None:
    ran: list[str] = []

    @app.task
    async def greet(ctx: Context) -> None:
        ran.append(ctx.job_id)

    caplog.set_level(logging.WARNING, logger="aioq.scheduler")
    await start_worker()
    await nc.jetstream().publish(
        app.names.sched_subject("default", "foreign-1"),
        b'{"task": "greet"}',
        headers={"Aioq-Run-At": run_at, "Nats-Msg-Id": "held:foreign-1"},
    )

    async def dead() -> bool:
        return bool(await app.dead.list("default"))

    await eventually(dead)
    await eventually(lambda: no_subjects(nc, app, app.names.sched_subject()))
    await asyncio.sleep(0.5)  # nothing more comes of it
    [entry] = await app.dead.list("default")
    letter = entry.letter
    assert (letter.id, letter.reason, letter.payload) == (
        "foreign-1",
        DeadReason.BAD_PAYLOAD,
        b'{"task": "greet"}',
    )
    assert letter.error is not None
    assert why in letter.error.message
    assert ran == []
    lines = [r.getMessage() for r in caplog.records if r.name == "aioq.scheduler"]
    assert len(lines) == 1, lines
    assert "foreign-1" in lines[0]
    assert why in lines[0]


# -- outages -------------------------------------------------------------------------------


async def test_a_vanishing_held_jobs_consumer_is_retried_with_backoff_and_logged_once(
    app: Aarq, nc: NatsClient, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    async def later(ctx: Context) -> None: ...

    caplog.set_level(logging.WARNING, logger="aioq.scheduler")
    scheduler = Scheduler(app, repeatables=[])
    task = asyncio.create_task(scheduler.run())
    js = nc.jetstream()
    try:
        await eventually(lambda: scheduler.ready)
        deleted = 0
        end = time.monotonic() + 1.5
        while time.monotonic() < end:  # the consumer disappears again and again for 1.5 s
            try:
                await js.delete_consumer(app.names.jobs_stream, app.names.scheduler_consumer)
                deleted += 1
            except NotFoundError:
                pass
            await asyncio.sleep(0.01)
        # Back to normal: delayed jobs move again.
        await later.with_options(delay=0.2).enqueue()
        queued = app.names.job_subject("default")

        async def moved() -> bool:
            return await subjects(nc, app, queued) == {queued: 1}

        await eventually(moved)
    finally:
        await cancel(task)
    lines = [r.getMessage() for r in caplog.records if r.name == "aioq.scheduler"]
    print(f"consumer deleted {deleted} times; scheduler warnings: {lines}")
    assert deleted >= 2
    # One line when the outage starts, one when it ends; each a single line.
    assert len(lines) == 2, lines
    assert "gone" in lines[0]
    assert "again" in lines[1]
    assert not any("\n" in line for line in lines)


async def test_delayed_jobs_due_around_a_server_restart_run_once_reconnected(
    own_server: EmbeddedNats,
) -> None:
    server = own_server
    app = Aarq(server.url, prefix="restart", ack_wait=2.0)
    ran: dict[str, float] = {}

    @app.task
    async def due_at(ctx: Context, due: float) -> None:
        ran[ctx.job_id] = time.time()

    worker = await start_running_worker(app, ["default"])
    try:
        now = time.time()
        dues = {}
        for k in range(6):  # due while the server is down, and in the 2 s after it is back
            due = now + 1.5 + k * 0.4
            job = await due_at.with_options(run_at=datetime.fromtimestamp(due, UTC)).enqueue(due)
            dues[job.id] = due
        await asyncio.sleep(0.3)  # every pull is open, waiting
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.start)
        back = time.time()
        await eventually(lambda: len(ran) == 6, timeout=20)
    finally:
        await worker.stop(timeout=15)
    late = {job_id: ran[job_id] - max(due, back) for job_id, due in dues.items()}
    print(f"lateness after the restart: {sorted(round(v, 3) for v in late.values())}")
    assert all(ran[job_id] >= due for job_id, due in dues.items()), "a job started early"
    # The client reconnects within its 1 s reconnect interval, and its pulls are renewed then
    # (not when they would have expired): 2 s leaves a second of slack.
    assert max(late.values()) < 2.0


async def _in_hand(js: JetStreamContext, app: Aarq, count: int) -> bool:
    """Whether the schedulers were handed all `count` delayed jobs, none left to deliver."""
    info = await js.consumer_info(app.names.jobs_stream, app.names.scheduler_consumer)
    return (info.num_pending, info.num_ack_pending) == (0, count)
