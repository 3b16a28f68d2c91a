"""`app.queues()`, `app.workers()`, `EventStream` and `use_connection`, on a real server."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from nats.aio.client import Client as NatsClient

from aioq import Aarq, Context
from aioq.admin import EventStream, QueueStats, WorkerStatus
from aioq.errors import ConfigError
from aioq.task import Task

from ..conftest import WorkerFactory
from ..helpers import eventually

pytestmark = pytest.mark.timeout(60)

DELAY_SUPPORTED = "delay" in inspect.signature(Task.with_options).parameters


async def stats_of(app: Aarq) -> dict[str, QueueStats]:
    return {q.name: q for q in await app.queues()}


async def test_queue_counts_before_and_after_a_worker_pulls(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient, prefix: str
) -> None:
    gate = asyncio.Event()

    @app.task(queue="work", retries=0)
    async def block(ctx: Context) -> None:
        await gate.wait()

    @app.task(queue="work", retries=1, backoff=0.05)
    async def blocks_on_second_try(ctx: Context) -> None:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        await gate.wait()

    @app.task(queue="broken", retries=0)
    async def fail(ctx: Context) -> None:
        raise ValueError("broken on purpose")

    @app.task(queue="idle")
    async def unused(ctx: Context) -> None:
        pass

    for _ in range(3):
        await block.enqueue()
    await fail.enqueue()
    # A foreign client's job on the bare subject of a queue no task of this app uses.
    await nc.jetstream().publish(f"{prefix}.jobs.foreign", b'{"task": "elsewhere"}')
    delayed = 0
    if DELAY_SUPPORTED:
        await block.with_options(delay=3600).enqueue()
        delayed = 1

    # Nobody pulled yet: no consumers, jobs counted from the stream.
    stats = await stats_of(app)
    assert set(stats) == {"work", "broken", "foreign", "idle"}
    assert stats["work"] == QueueStats(name="work", pending=3, delayed=delayed)
    assert stats["broken"] == QueueStats(name="broken", pending=1)
    assert stats["foreign"] == QueueStats(name="foreign", pending=1)
    assert stats["idle"] == QueueStats(name="idle")

    await start_worker(queues=["work", "broken"], concurrency=5)
    await blocks_on_second_try.enqueue()

    def busy(value: object) -> bool:
        s = value if isinstance(value, dict) else {}
        work, broken = s.get("work"), s.get("broken")
        return (
            work is not None
            and broken is not None
            and (work.pending, work.in_flight, work.redelivered) == (0, 4, 1)
            and broken.dead == 1
        )

    async def busy_stats() -> dict[str, QueueStats] | None:
        stats = await stats_of(app)
        return stats if busy(stats) else None

    stats = await eventually(busy_stats)
    work = stats["work"]
    assert work.consumer
    assert not work.paused
    assert work.delayed == delayed
    assert stats["broken"].consumer
    assert stats["broken"].pending == 0
    assert stats["foreign"] == QueueStats(name="foreign", pending=1)  # still nobody pulls it

    # The server's consumer pause shows (nats-server 2.11+).
    js = nc.jetstream()
    await js.pause_consumer(app.names.jobs_stream, "work", "2099-01-01T00:00:00Z")
    paused = (await stats_of(app))["work"]
    assert paused.paused
    assert paused.paused_until == pytest.approx(4_070_908_800)
    await js.resume_consumer(app.names.jobs_stream, "work")

    gate.set()

    async def idle() -> bool:
        work = (await stats_of(app))["work"]
        return (work.pending, work.in_flight, work.redelivered) == (0, 0, 0) and (
            work.waiting_pulls >= 1 and not work.paused
        )

    await eventually(idle)


async def test_workers_lists_live_workers_with_their_age(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    assert await app.workers() == []  # the bucket does not exist yet

    first = await start_worker(queues=["a"], concurrency=3)
    second = await start_worker(queues=["a", "b"])
    kv = await nc.jetstream().key_value(app.names.workers_bucket)
    await kv.put("not-a-worker", b"not json")  # skipped, not an error

    workers: list[WorkerStatus] = await app.workers()
    by_id = {w.info.id: w for w in workers}
    assert set(by_id) == {first.id, second.id}
    assert by_id[first.id].info.queues == ["a"]
    assert by_id[first.id].info.concurrency == 3
    assert by_id[second.id].info.queues == ["a", "b"]
    assert all(-1.0 < w.age < 5.0 for w in workers), workers

    first.stop()  # a stopping worker deletes its heartbeat

    async def only_second() -> bool:
        return [w.info.id for w in await app.workers()] == [second.id]

    await eventually(only_second)


async def test_event_stream_is_subscribed_on_entry_and_filters(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    @app.task(queue="default", retries=0)
    async def add(ctx: Context, a: int, b: int) -> int:
        return a + b

    await start_worker()
    async with EventStream(app, "default", kinds=["enqueued", "succeeded"]) as events:
        job = await add.enqueue(1, 2)  # published right after entry: not missed
        seen: list[tuple[str, str]] = []
        async with asyncio.timeout(10):
            async for event in events:
                seen.append((event.kind.value, event.id))
                if len(seen) == 2:
                    break
    assert seen == [("enqueued", job.id), ("succeeded", job.id)]
    with pytest.raises(ConfigError):
        EventStream(app, "bad.queue")


def test_use_connection_overrides_only_what_is_given() -> None:
    app = Aarq("nats://a:4222", prefix="mine", user="u", password="p")
    app.use_connection(prefix="other", token="t")
    assert app.prefix == "other"
    assert app.names.jobs_stream == "OTHER_JOBS"
    assert (app.settings.user, app.settings.password, app.settings.token) == ("u", "p", "t")
    assert app.settings.servers == ["nats://a:4222"]
    app.use_connection(servers="nats://b:1,nats://c:2", credentials="/x.creds")
    assert app.settings.servers == ["nats://b:1", "nats://c:2"]
    assert app.settings.credentials == "/x.creds"
    with pytest.raises(ConfigError):
        app.use_connection(prefix="bad prefix")
