"""Priorities on JetStream: the subjects and consumers, foreign publishers, no cost unused."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient

from aioq import Aarq, Context

from ..conftest import WorkerFactory
from ..helpers import eventually


async def _consumers(nc: NatsClient, app: Aarq) -> list[str]:
    infos = await nc.jetstream().consumers_info(app.names.jobs_stream)
    return sorted(info.name for info in infos if not info.name.startswith("@"))


async def test_levels_have_their_own_subjects_and_consumers(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    ran: list[int] = []

    @app.task(name="work", queue="q", priority=9)
    async def work(ctx: Context, level: int) -> None:
        ran.append(level)

    await work.enqueue(9)
    await work.with_options(priority=5).enqueue(5)
    js = nc.jetstream()
    info = await js.stream_info(app.names.jobs_stream, subjects_filter=f"{app.names.prefix}.jobs.>")
    assert info.state.subjects == {
        app.names.job_subject("q"): 1,
        f"{app.names.prefix}.jobs.q.p.9": 1,
    }
    await start_worker(queues=["q"])
    await eventually(lambda: sorted(ran) == [5, 9])
    assert await _consumers(nc, app) == ["q", "q@p9"]


async def test_a_queue_without_priorities_pulls_only_its_own_consumer(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    ran: list[int] = []

    @app.task(name="plain", queue="plain")
    async def plain(ctx: Context, n: int) -> None:
        ran.append(n)

    await app.enqueue_many([plain.prepare(n) for n in range(50)])
    running = await start_worker(queues=["plain"])
    await eventually(lambda: len(ran) == 50)
    assert await _consumers(nc, app) == ["plain"]
    source = running.sources["plain"]
    assert source.levels == {}


async def test_a_foreign_client_publishes_a_priority_job(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    started: list[str] = []

    @app.task(name="work", queue="mixed")
    async def work(ctx: Context, what: str) -> None:
        started.append(what)
        await asyncio.sleep(0.01)

    await app.enqueue_many([work.with_options(priority=1).prepare("low") for _ in range(300)])
    await start_worker(queues=["mixed"], concurrency=2)
    await eventually(lambda: len(started) >= 10)
    js = nc.jetstream()
    subject = f"{app.names.prefix}.jobs.mixed.p.9"
    for n in range(5):
        await js.publish(
            subject, b'{"task": "work", "args": ["urgent"]}', headers={"Nats-Msg-Id": f"f-{n}"}
        )
    published = len(started)
    await eventually(lambda: started.count("urgent") == 5, timeout=15)
    last = len(started) - started[::-1].index("urgent")
    assert started[published:last].count("low") <= 2, started[published:last]


async def test_an_emptied_level_is_dropped_and_heard_again(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    ran: list[int] = []

    @app.task(name="work", queue="again", priority=0)
    async def work(ctx: Context, n: int) -> None:
        ran.append(n)

    running = await start_worker(queues=["again"])
    source = running.sources["again"]
    await work.enqueue(1)
    await eventually(lambda: ran == [1])
    await eventually(lambda: source.levels == {}, timeout=10, what="level 0 dropped once empty")
    await work.enqueue(2)
    await eventually(lambda: ran == [1, 2], timeout=5)


async def test_a_priority_job_of_a_crashed_worker_is_rescued_at_its_level(
    app: Aarq, start_worker: WorkerFactory, nats_url: str
) -> None:
    app.queue("leased", ack_wait=0.5)
    attempts: list[int] = []

    @app.task(queue="leased", priority=9)
    async def once(ctx: Context) -> None:
        attempts.append(ctx.attempt)

    job = await once.enqueue()
    crashed = Aarq(nats_url, prefix=app.prefix, ack_wait=0.5)
    crashed.queue("leased", ack_wait=0.5)
    broker = await crashed.connect()
    source = await broker.jobs.open_source("leased", crashed.queue("leased"), 9)
    assert len(await source.fetch_now(1)) == 1
    await crashed.close()  # gone without settling the job, like a killed process
    await start_worker(queues=["leased"])
    await job.result(timeout=10)
    assert attempts == [2]
