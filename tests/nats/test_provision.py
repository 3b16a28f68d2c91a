"""Streams and consumers: created idempotently, shared, and re-created when deleted."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, RetentionPolicy, StorageType

from aioq import Aarq, Context

from ..conftest import WorkerFactory
from ..helpers import eventually


async def test_queue_maps_to_a_subject_and_one_shared_durable_consumer(
    app: Aarq, nc: NatsClient, start_worker: WorkerFactory
) -> None:
    app.queue("email", ack_wait=7)
    first = await start_worker(queues=["email"], concurrency=2)
    second = await start_worker(queues=["email"], concurrency=2)
    assert first.id != second.id
    js = nc.jetstream()
    stream = await js.stream_info(app.names.jobs_stream)
    # Delayed jobs are held in the same stream, outside every queue's filter.
    assert stream.config.subjects == [f"{app.prefix}.jobs.>", f"{app.prefix}.sched.>"]
    assert stream.config.retention == RetentionPolicy.WORK_QUEUE
    assert stream.config.storage == StorageType.FILE
    consumers = [
        c
        for c in await js.consumers_info(app.names.jobs_stream)
        if c.name != app.names.scheduler_consumer  # the embedded schedulers' own
    ]
    assert [c.name for c in consumers] == ["email"]
    config = consumers[0].config
    assert config.filter_subjects == [f"{app.prefix}.jobs.email", f"{app.prefix}.jobs.email.*"]
    assert config.ack_policy == AckPolicy.EXPLICIT
    assert config.ack_wait == 7.0
    assert config.max_deliver == -1


async def test_consumer_settings_are_updated_on_start(
    app: Aarq, nc: NatsClient, start_worker: WorkerFactory
) -> None:
    worker = await start_worker(queues=["q"], concurrency=1)
    worker.stop()
    await eventually(lambda: worker.active == 0)
    app.queue("q", ack_wait=9)
    await start_worker(queues=["q"], concurrency=1)
    info = await nc.jetstream().consumer_info(app.names.jobs_stream, "q")
    assert info.config.ack_wait == 9.0


async def test_worker_recreates_a_deleted_consumer(
    app: Aarq, nc: NatsClient, start_worker: WorkerFactory
) -> None:
    ran: list[int] = []

    @app.task(queue="q")
    async def mark(ctx: Context, n: int) -> None:
        ran.append(n)

    await start_worker(queues=["q"], concurrency=2)
    await mark.enqueue(1)
    await eventually(lambda: ran == [1])
    await nc.jetstream().delete_consumer(app.names.jobs_stream, "q")
    await asyncio.sleep(0.2)
    await mark.enqueue(2)
    await eventually(lambda: ran == [1, 2], timeout=15)


async def test_worker_recreates_a_consumer_deleted_while_no_pull_waits(
    app: Aarq, nc: NatsClient, start_worker: WorkerFactory
) -> None:
    started: list[str] = []

    @app.task(queue="q")
    async def step(ctx: Context, name: str) -> None:
        started.append(name)
        if name == "long":
            await asyncio.sleep(1.0)

    await start_worker(queues=["q"], concurrency=1)  # busy: no pull is outstanding
    await step.enqueue("long")
    await eventually(lambda: started == ["long"])
    await nc.jetstream().delete_consumer(app.names.jobs_stream, "q")
    await step.enqueue("after")
    # The next pull finds no consumer; the worker re-creates it and gets on with the queue.
    await eventually(lambda: "after" in started, timeout=15)
