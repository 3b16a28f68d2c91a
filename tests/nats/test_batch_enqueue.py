"""`enqueue_many` in atomic batches: every job stored once, found by its record, refused batches."""

from __future__ import annotations

import asyncio
import os
import signal

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from aioq import Aarq, Context
from aioq._nats import jobs as nats_jobs
from aioq._nats.broker import NatsBroker
from aioq._nats.bulk import header_block
from aioq._nats.streams import message_at
from aioq.embedded import EmbeddedNats
from aioq.errors import PartialEnqueueError
from aioq.wire import JobMessage, JobState

from ..helpers import eventually, frozen


async def _nats_broker(app: Aarq) -> NatsBroker:
    broker = await app.connect()
    assert isinstance(broker, NatsBroker)
    return broker


async def test_a_large_batch_stores_every_job_once_where_its_record_says(
    app: Aarq, nc: NatsClient
) -> None:
    @app.task(queue="bulk")
    async def item(ctx: Context, n: int) -> None: ...

    # More than one atomic batch (1000 at most), with jobs on two priority levels.
    prepared = [item.with_options(priority=9 if n % 7 == 0 else 5).prepare(n) for n in range(2300)]
    jobs = await app.enqueue_many(prepared)
    broker = await _nats_broker(app)
    assert broker.jobs.atomic
    assert not any(job.duplicate for job in jobs)
    js = nc.jetstream()
    info = await js.stream_info(app.names.jobs_stream)
    assert info.config.allow_atomic
    assert info.state.messages == 2300
    # Each job's record names the sequence its own message was stored at.
    for job in jobs[:5] + jobs[995:1005] + jobs[-5:]:
        found = await broker.records.locate(job.id)
        assert found is not None
        queue, seq = found
        assert queue == "bulk"
        message = await message_at(js, app.names.jobs_stream, seq)
        assert message is not None
        assert msgspec.json.decode(message.data, type=JobMessage).id == job.id
    assert (await jobs[1500].status()).state is JobState.QUEUED
    assert (await app.job(jobs[1500].id)).queue == "bulk"
    assert await jobs[1500].abort()
    assert await broker.jobs.find(jobs[1500].id) is None
    assert (await js.stream_info(app.names.jobs_stream)).state.messages == 2299


async def test_a_batch_holding_a_stored_id_reports_that_job_as_duplicate(
    app: Aarq, nc: NatsClient
) -> None:
    @app.task(queue="q")
    async def item(ctx: Context, n: int) -> None: ...

    first = await item.with_options(job_id="seen").enqueue(0)
    prepared = [item.prepare(n) for n in range(1, 40)]
    prepared.insert(20, item.with_options(job_id="seen").prepare(0))
    prepared.append(item.with_options(job_id="twice").prepare(99))
    prepared.append(item.with_options(job_id="twice").prepare(99))
    jobs = await app.enqueue_many(prepared)
    assert [job.id for job in jobs if job.duplicate] == ["seen", "twice"]
    info = await nc.jetstream().stream_info(app.names.jobs_stream)
    assert info.state.messages == 41
    assert (await first.status()).state is JobState.QUEUED
    for job in jobs:
        assert (await job.status()).state is JobState.QUEUED


async def test_provisioning_lets_an_older_jobs_stream_take_atomic_batches(
    app: Aarq, nc: NatsClient
) -> None:
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(
            name=app.names.jobs_stream,
            subjects=[app.names.jobs_wildcard, app.names.sched_wildcard],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            duplicate_window=120.0,
        )
    )
    assert not (await js.stream_info(app.names.jobs_stream)).config.allow_atomic

    @app.task(queue="q")
    async def item(ctx: Context, n: int) -> None: ...

    jobs = await app.enqueue_many([item.prepare(n) for n in range(10)])
    assert (await js.stream_info(app.names.jobs_stream)).config.allow_atomic
    assert (await _nats_broker(app)).jobs.atomic
    assert (await jobs[9].status()).state is JobState.QUEUED


async def test_a_stream_that_stopped_taking_batches_gets_jobs_one_by_one(
    app: Aarq, nc: NatsClient
) -> None:
    @app.task(queue="q")
    async def item(ctx: Context, n: int) -> None: ...

    broker = await _nats_broker(app)
    js = nc.jetstream()
    info = await js.stream_info(app.names.jobs_stream)
    await js.update_stream(info.config.evolve(allow_atomic=False))
    jobs = await app.enqueue_many([item.prepare(n) for n in range(10)])
    assert not broker.jobs.atomic
    assert (await js.stream_info(app.names.jobs_stream)).state.messages == 10
    assert (await jobs[3].status()).state is JobState.QUEUED


def test_a_header_value_never_spans_lines() -> None:
    assert header_block({"A": "1", "B": "two"}) == b"NATS/1.0\r\nA: 1\r\nB: two\r\n\r\n"
    assert header_block({"A": "x\r\nPUB evil 1"}) == b"NATS/1.0\r\nA: x  PUB evil 1\r\n\r\n"


async def test_records_written_while_disconnected_are_buffered_until_reconnect(
    own_server: EmbeddedNats,
) -> None:
    server = own_server
    app = Aarq(server.url, prefix="buffered")
    try:
        broker = await _nats_broker(app)
        assert server.pid is not None
        os.kill(server.pid, signal.SIGKILL)
        await eventually(lambda: not broker.nc.is_connected, what="the connection lost")
        await broker.records.put_queued_many([("b1", "q", 1, "t"), ("b2", "q", 2, "t")])
        await asyncio.to_thread(server.start)
        await eventually(lambda: broker.records.locate("b2"), what="the buffered record")
        assert await broker.records.locate("b1") == ("q", 1)
    finally:
        await app.close()


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "job-by-job"])
async def test_an_unanswered_batch_fails_in_time_and_is_safely_sent_again(
    own_server: EmbeddedNats, monkeypatch: pytest.MonkeyPatch, atomic: bool
) -> None:
    monkeypatch.setattr(nats_jobs, "ACK_TIMEOUT_S", 0.5)
    server = own_server
    app = Aarq(server.url, prefix="unanswered")

    @app.task
    async def item(ctx: Context, n: int) -> None: ...

    try:
        broker = await _nats_broker(app)
        await item.enqueue(0)  # the streams exist
        broker.jobs.atomic = atomic
        prepared = [item.prepare(n) for n in range(1, 4)]
        assert server.pid is not None
        await frozen(server.pid)  # takes the bytes in, answers nothing
        try:
            async with asyncio.timeout(10):
                with pytest.raises(PartialEnqueueError, match="3 of 3 jobs were not enqueued"):
                    await app.enqueue_many(prepared)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        again = await app.enqueue_many(prepared)
        assert [j.id for j in again] == [p.job_id for p in prepared]
        for job in prepared:
            assert await broker.jobs.find(job.job_id) == "default"
        info = await broker.js.stream_info(app.names.jobs_stream)
        assert info.state.messages == 4  # each job stored once
    finally:
        await app.close()


async def test_an_enqueue_sent_again_after_a_lost_answer_leaves_the_job_findable(
    app: Aarq,
) -> None:
    @app.task(queue="resent")
    async def item(ctx: Context, n: int) -> None: ...

    broker = await _nats_broker(app)
    call = item.with_options(job_id="resent-1")
    first = call.prepare(1)
    # The first send was stored, its answer lost: no record was written for it.
    subject = app.names.publish_subject("resent", first.priority)
    await broker.js.publish(subject, first.data, headers={"Nats-Msg-Id": first.job_id})
    assert await broker.jobs.find("resent-1") is None
    again = await call.enqueue(1)
    assert again.duplicate
    assert await broker.jobs.find("resent-1") == "resent"
    assert (await (await app.job("resent-1")).status()).state == JobState.QUEUED
