"""Enqueueing from Python: validation, encoding, idempotency, batches, connection errors."""

from __future__ import annotations

import time

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from aioq import (
    Aarq,
    ArgumentsError,
    BrokerUnavailableError,
    ConfigError,
    Context,
    PayloadTooLargeError,
    SerializationError,
    UnknownTaskError,
)
from aioq.wire import JobMessage, JobState


async def stored_messages(nc: NatsClient, app: Aarq, queue: str) -> list[JobMessage]:
    js = nc.jetstream()
    subjects = app.names.job_subject(queue)
    info = await js.stream_info(app.names.jobs_stream, subjects_filter=subjects)
    messages = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(app.names.jobs_stream, seq)
        assert msg.data is not None
        messages.append(msgspec.json.decode(msg.data, type=JobMessage))
    return messages


def test_duplicate_task_name_is_an_error(app: Aarq) -> None:
    @app.task
    async def notify(ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="duplicate task name 'notify'"):

        @app.task(name="notify")
        async def other(ctx: Context) -> None: ...


@pytest.mark.parametrize("queue", ["a.b", "has space", "star*", "gt>", "", "x" * 65])
def test_invalid_queue_names_are_rejected(app: Aarq, queue: str) -> None:
    with pytest.raises(ConfigError, match="invalid queue name"):

        @app.task(queue=queue)
        async def job(ctx: Context) -> None: ...


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"ttl": -5}, "ttl"),
        ({"backoff": -1.0}, "backoff"),
        ({"no_retry_for": ("ValueError",)}, "no_retry_for"),
    ],
)
def test_invalid_task_options_fail_at_decoration(
    app: Aarq, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        app.task(**options)  # type: ignore[call-overload]


def test_task_must_take_a_context(app: Aarq) -> None:
    with pytest.raises(ConfigError, match="first positional parameter"):

        @app.task
        async def no_ctx() -> None: ...  # type: ignore[type-var,misc]


def test_invalid_prefix_is_rejected() -> None:
    with pytest.raises(ConfigError, match="invalid prefix"):
        Aarq(prefix="a.b")


async def test_enqueue_connects_lazily_and_stores_the_documented_json(
    app: Aarq, nc: NatsClient
) -> None:
    @app.task(queue="email")
    async def send_email(ctx: Context, to: str, *, subject: str) -> None: ...

    assert not app.connected
    before = time.time()
    job = await send_email.enqueue("ada@example.com", subject="hi")
    assert app.connected
    assert (job.task, job.queue, job.duplicate) == ("send_email", "email", False)
    [stored] = await stored_messages(nc, app, "email")
    assert stored.task == "send_email"
    assert stored.args == ["ada@example.com"]
    assert stored.kwargs == {"subject": "hi"}
    assert stored.id == job.id
    subject = f"{app.prefix}.jobs.email"  # every job of a queue on the queue's subject
    msg = await nc.jetstream().get_last_msg(app.names.jobs_stream, subject)
    assert msg.seq is not None
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == job.id  # the id deduplicates
    assert stored.enqueued_at is not None
    assert before <= stored.enqueued_at <= time.time()


async def test_arguments_that_do_not_bind_fail_before_publishing(app: Aarq, nc: NatsClient) -> None:
    @app.task
    async def add(ctx: Context, a: int, b: int) -> int:
        return a + b

    with pytest.raises(ArgumentsError, match=r"add\(a: int, b: int\).*missing a required argument"):
        await add.enqueue(1)  # type: ignore[call-arg]
    with pytest.raises(ArgumentsError, match="unexpected keyword argument 'c'"):
        await app.enqueue("add", 1, 2, c=3)
    assert not app.connected  # nothing was published


async def test_unencodable_arguments_name_the_type(app: Aarq) -> None:
    @app.task
    async def store(ctx: Context, value: object) -> None: ...

    with pytest.raises(SerializationError, match="Encoding objects of type object is unsupported"):
        await store.enqueue(object())


async def test_oversized_job_is_refused_with_the_limit(app: Aarq) -> None:
    @app.task
    async def upload(ctx: Context, blob: str) -> None: ...

    with pytest.raises(PayloadTooLargeError, match="max_payload of 1048576 bytes"):
        await upload.enqueue("x" * 2_000_000)


async def test_enqueue_by_name(app: Aarq) -> None:
    @app.task(queue="q1")
    async def ping(ctx: Context, n: int) -> None: ...

    job = await app.enqueue("ping", 1)
    assert (job.task, job.queue) == ("ping", "q1")
    with pytest.raises(UnknownTaskError, match=r"unknown task 'pong' \(registered: ping\)"):
        await app.enqueue("pong")


async def test_job_id_makes_enqueue_idempotent(app: Aarq, nc: NatsClient) -> None:
    @app.task
    async def charge(ctx: Context, cents: int) -> None: ...

    first = await charge.with_options(job_id="order-42").enqueue(100)
    second = await charge.with_options(job_id="order-42").enqueue(100)
    assert first.id == second.id == "order-42"
    assert (first.duplicate, second.duplicate) == (False, True)
    assert len(await stored_messages(nc, app, "default")) == 1


async def test_per_call_options_travel_in_the_message(app: Aarq, nc: NatsClient) -> None:
    @app.task
    async def work(ctx: Context, timeout: int) -> None: ...

    # `timeout` here is the task's own argument, not an option.
    await work.with_options(ttl=60, timeout=5, retries=1).enqueue(timeout=7)
    [stored] = await stored_messages(nc, app, "default")
    assert (stored.ttl, stored.timeout, stored.retries) == (60.0, 5.0, 1)
    assert stored.kwargs == {"timeout": 7}
    for bad in ("", "a.b", "has space", "x" * 129):
        with pytest.raises(ConfigError, match="invalid job id"):
            work.with_options(job_id=bad)


async def test_enqueue_many_publishes_a_batch(app: Aarq, nc: NatsClient) -> None:
    @app.task(queue="bulk")
    async def item(ctx: Context, n: int) -> None: ...

    jobs = await app.enqueue_many(item.prepare(n) for n in range(300))
    assert len({job.id for job in jobs}) == 300
    stored = await stored_messages(nc, app, "bulk")
    assert sorted(m.args[0] for m in stored) == list(range(300))
    assert await app.enqueue_many([]) == []


async def test_unreachable_server_is_one_clear_error() -> None:
    app = Aarq("nats://127.0.0.1:1", connect_timeout=0.5)

    @app.task
    async def noop(ctx: Context) -> None: ...

    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match=r"cannot reach NATS at nats://127\.0\.0\.1:1"):
        await noop.enqueue()
    assert time.monotonic() - started < 10


async def test_two_apps_with_different_prefixes_are_isolated(
    nats_url: str, prefix: str, nc: NatsClient
) -> None:
    first, second = Aarq(nats_url, prefix=prefix + "a"), Aarq(nats_url, prefix=prefix + "b")
    async with first, second:

        @first.task
        async def job(ctx: Context) -> None: ...

        await job.enqueue()
        js = nc.jetstream()
        assert (await js.stream_info(first.names.jobs_stream)).state.messages == 1
        assert (await js.stream_info(second.names.jobs_stream)).state.messages == 0
        for app in (first, second):
            for stream in (app.names.jobs_stream, app.names.dead_stream):
                await js.delete_stream(stream)


async def test_async_with_closes_the_connection(app: Aarq) -> None:
    async with app:
        assert app.connected
    assert not app.connected


async def test_a_queued_job_is_found_by_its_id_alone(app: Aarq, nc: NatsClient) -> None:
    @app.task(queue="email")
    async def welcome(ctx: Context, to: str) -> None: ...

    job = await welcome.enqueue("ada@example.com")
    found = await app.job(job.id)  # no worker runs: only the "queued" record knows the job
    assert (found.task, found.queue) == ("welcome", "email")
    record = await found.status()
    assert record.state is JobState.QUEUED
    assert record.seq is not None
    msg = await nc.jetstream().get_msg(app.names.jobs_stream, record.seq)
    assert msg.data is not None
    assert msgspec.json.decode(msg.data, type=JobMessage).id == job.id
