"""Bad input published straight to a job subject: dead-lettered on the first delivery with a
reason and the raw payload, one log line, and the worker keeps going."""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.aio.client import Client as NatsClient

from aioq import Aarq, Context
from aioq.wire import DeadLetter, DeadReason

from ..conftest import WorkerFactory
from ..helpers import eventually
from .test_worker_semantics import dead_letters, stored_jobs, wait_dead

BAD_INPUT = [
    pytest.param(b"\xff\x00not json", DeadReason.BAD_PAYLOAD, id="undecodable-bytes"),
    pytest.param(b"", DeadReason.BAD_PAYLOAD, id="empty"),
    pytest.param(b'{"task": "greet", "args": ["x"', DeadReason.BAD_PAYLOAD, id="truncated-json"),
    pytest.param(b"[1, 2, 3]", DeadReason.BAD_PAYLOAD, id="json-array"),
    pytest.param(b'"greet"', DeadReason.BAD_PAYLOAD, id="json-string"),
    pytest.param(b'{"args": []}', DeadReason.BAD_PAYLOAD, id="no-task"),
    pytest.param(b'{"task": ""}', DeadReason.BAD_PAYLOAD, id="empty-task"),
    pytest.param(b'{"task": 42}', DeadReason.BAD_PAYLOAD, id="task-not-a-string"),
    pytest.param(
        b'{"task": "greet", "args": ["ann"], "kwarg": {"loud": true}}',
        DeadReason.BAD_PAYLOAD,
        id="unknown-field",
    ),
    pytest.param(
        b'{"task": "greet", "args": {"name": "ann"}}', DeadReason.BAD_PAYLOAD, id="args-not-list"
    ),
    pytest.param(
        b'{"task": "greet", "args": ["ann"], "retries": -1}',
        DeadReason.BAD_PAYLOAD,
        id="negative-retries",
    ),
    pytest.param(b'{"task": "no_such_task"}', DeadReason.UNKNOWN_TASK, id="unknown-task"),
    pytest.param(
        b'{"task": "greet", "args": ["a", "b", "c"]}', DeadReason.BAD_ARGS, id="too-many-args"
    ),
    pytest.param(b'{"task": "greet"}', DeadReason.BAD_ARGS, id="missing-arg"),
    pytest.param(
        b'{"task": "greet", "args": ["ann"], "kwargs": {"colour": "red"}}',
        DeadReason.BAD_ARGS,
        id="unexpected-kwarg",
    ),
    pytest.param(
        b'{"task": "greet", "args": ["ann"], "kwargs": {"name": "bob"}}',
        DeadReason.BAD_ARGS,
        id="arg-given-twice",
    ),
    pytest.param(
        b'{"task": "anything", "kwargs": {"ctx": 1}}',
        DeadReason.BAD_ARGS,
        id="kwarg-named-like-ctx",
    ),
]


@pytest.mark.parametrize(("payload", "reason"), BAD_INPUT)
async def test_bad_input_is_dead_lettered_on_first_delivery(
    app: Aarq,
    start_worker: WorkerFactory,
    nc: NatsClient,
    caplog: pytest.LogCaptureFixture,
    payload: bytes,
    reason: DeadReason,
) -> None:
    caplog.set_level(logging.INFO, logger="aioq")
    ran: list[str] = []

    @app.task(retries=3, backoff=0.05)
    async def greet(ctx: Context, name: str, *, loud: bool = False) -> None:
        ran.append(name)

    @app.task(retries=3, backoff=0.05)
    async def anything(ctx: Context, *args: object, **kwargs: object) -> None:
        ran.append("anything")

    worker = await start_worker(concurrency=2)
    js = nc.jetstream()
    ack = await js.publish(f"{app.prefix}.jobs.default", payload)

    [record] = await wait_dead(nc, app, 1)
    assert record.reason is reason
    assert record.attempts == 1
    assert record.payload == payload
    assert record.queue == "default"
    assert record.stream_seq == ack.seq
    assert record.worker == worker.id
    assert record.id  # derived, since the publisher gave none
    assert record.error is not None
    assert record.error.message
    if reason is not DeadReason.BAD_PAYLOAD:
        assert record.task is not None
        assert record.task in payload.decode()

    # The worker is still running and still runs good jobs.
    await greet.enqueue("after")
    await eventually(lambda: ran == ["after"])
    assert worker.stats.failed == 1
    assert worker.stats.retried == 0
    assert worker.stats.processed == 1

    # It never looped: one delivery of the bad message, nothing left in the stream.
    async def drained() -> bool:
        return await stored_jobs(nc, app) == 0

    await eventually(drained)
    info = await js.consumer_info(app.names.jobs_stream, app.names.consumer("default"))
    assert info.num_redelivered == 0
    assert info.delivered.consumer_seq == 2
    assert len(await dead_letters(nc, app)) == 1

    # Exactly one warning, naming the job and the reason; no error or traceback.
    about_job = [
        r
        for r in caplog.records
        if r.name.startswith("aioq")
        and r.levelno >= logging.WARNING
        and record.id in r.getMessage()
    ]
    assert len(about_job) == 1, [r.getMessage() for r in about_job]
    [line] = about_job
    assert line.levelno == logging.WARNING
    assert line.name == "aioq.worker"
    assert reason.value in line.getMessage()
    assert line.exc_info is None
    assert not [
        r for r in caplog.records if r.name.startswith("aioq") and r.levelno >= logging.ERROR
    ]


async def test_bad_input_between_good_jobs(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    """A batch mixing bad and good messages: each bad one is dead-lettered, every good one runs."""
    ran: list[int] = []

    @app.task
    async def count(ctx: Context, n: int) -> None:
        ran.append(n)

    js = nc.jetstream()
    subject = f"{app.prefix}.jobs.default"
    bad = [b"\x00", b'{"task": "nope"}', b'{"task": "count", "args": [1, 2]}', b"{}"]
    for n, payload in enumerate(bad):
        await count.enqueue(n)
        await js.publish(subject, payload)
    worker = await start_worker(concurrency=3)

    records = await wait_dead(nc, app, len(bad))
    await eventually(lambda: len(ran) == len(bad))
    assert sorted(ran) == list(range(len(bad)))
    assert sorted(r.payload for r in records) == sorted(bad)
    assert sorted(r.reason for r in records) == sorted(
        [
            DeadReason.BAD_PAYLOAD,
            DeadReason.UNKNOWN_TASK,
            DeadReason.BAD_ARGS,
            DeadReason.BAD_PAYLOAD,
        ]
    )
    assert all(r.attempts == 1 for r in records)
    assert worker.stats.failed == len(bad)
    assert worker.stats.processed == len(bad)


async def test_bad_input_keeps_the_publishers_id(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient, caplog: pytest.LogCaptureFixture
) -> None:
    await start_worker()
    js = nc.jetstream()
    await js.publish(f"{app.prefix}.jobs.default", b"not json", headers={"Nats-Msg-Id": "order-99"})
    [record] = await wait_dead(nc, app, 1)
    assert record.id == "order-99"
    assert record.reason is DeadReason.BAD_PAYLOAD
    await asyncio.sleep(0.05)
    lines = [r.getMessage() for r in caplog.records if "order-99" in r.getMessage()]
    assert len(lines) == 1, lines


def test_dead_letter_payload_round_trips_binary() -> None:
    """Payloads are bytes in the record (base64 on the wire), so any bytes survive."""
    import msgspec

    from aioq.wire import encode

    raw = bytes(range(256))
    record = DeadLetter(
        id="x", queue="q", reason=DeadReason.BAD_PAYLOAD, attempts=1, dead_at=0.0, payload=raw
    )
    assert msgspec.json.decode(encode(record), type=DeadLetter).payload == raw
