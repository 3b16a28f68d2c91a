"""Contract: running jobs. Results, retries, dead letters, timeouts, ttl, bad input, dedupe."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from aioq import (
    Context,
    DeadReason,
    JobExpiredError,
    JobFailedError,
    JobState,
    PayloadTooLargeError,
)
from aioq.backend.jobs import Delivery, JobSource

from ..helpers import eventually
from .conftest import Backend


async def test_enqueue_and_result(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def add(ctx: Context, a: int, b: int) -> int:
        return a + b

    await backend.worker()
    job = await add.enqueue(2, 3)
    assert not job.duplicate
    assert await job.result(timeout=10) == 5
    status = await job.status()
    assert (status.state, status.attempts, status.task, status.queue) == (
        JobState.SUCCEEDED,
        1,
        "add",
        "default",
    )
    assert status.enqueued_at is not None
    assert status.started_at is not None
    assert status.finished_at is not None
    assert status.enqueued_at <= status.started_at <= status.finished_at


async def test_retries_with_backoff_then_success(backend: Backend) -> None:
    app = backend.app
    starts: list[float] = []

    @app.task(retries=3, backoff=0.3)
    async def flaky(ctx: Context) -> int:
        starts.append(app.clock.time())
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt} fails")
        return ctx.attempt

    worker = await backend.worker()
    job = await flaky.enqueue()
    assert await job.result(timeout=10) == 3
    assert (await job.status()).attempts == 3
    # Each retry waited out its backoff, on the broker's clock (1 ms for float rounding).
    assert [b - a >= 0.299 for a, b in itertools.pairwise(starts)] == [True, True]
    await eventually(lambda: worker.stats.processed == 1)
    assert (worker.stats.retried, worker.stats.failed) == (2, 0)
    assert await app.dead.list("default") == []


async def test_retries_exhausted_go_to_the_dead_letters(backend: Backend) -> None:
    app = backend.app

    @app.task(retries=1, backoff=0.1)
    async def doomed(ctx: Context, who: str) -> None:
        raise ValueError(f"cannot greet {who}")

    worker = await backend.worker()
    job = await doomed.enqueue("bob")
    with pytest.raises(JobFailedError) as failed:
        await job.result(timeout=10)
    assert failed.value.error_type == "ValueError"
    assert failed.value.error_message == "cannot greet bob"
    [entry] = await app.dead.list("default")
    letter = entry.letter
    assert (letter.id, letter.reason, letter.attempts, letter.task) == (
        job.id,
        DeadReason.FAILED,
        2,
        "doomed",
    )
    assert letter.error is not None
    assert letter.error.type == "ValueError"
    assert "raise ValueError" in letter.error.traceback
    assert letter.worker == worker.worker.id
    assert (await job.status()).state is JobState.FAILED
    assert await app.dead.counts() == {"default": 1}


async def test_no_retry_for_fails_at_once(backend: Backend) -> None:
    app = backend.app
    attempts: list[int] = []

    @app.task(retries=5, no_retry_for=(KeyError,))
    async def lookup(ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise KeyError("gone")

    await backend.worker()
    with pytest.raises(JobFailedError, match="KeyError"):
        await (await lookup.enqueue()).result(timeout=10)
    assert attempts == [1]


async def test_timeout_fails_the_attempt(backend: Backend) -> None:
    app = backend.app

    @app.task(retries=0, timeout=0.2)
    async def stuck(ctx: Context) -> None:
        await asyncio.sleep(30)

    await backend.worker()
    job = await stuck.enqueue()
    with pytest.raises(JobFailedError) as failed:
        await job.result(timeout=10)
    assert failed.value.error_type == "TimeoutError"
    assert "timed out after 0.2s" in failed.value.error_message
    [entry] = await app.dead.list("default")
    assert entry.letter.reason is DeadReason.FAILED


async def test_ttl_expiry_dead_letters_the_job_as_expired(backend: Backend) -> None:
    app = backend.app
    ran: list[str] = []

    @app.task(ttl=0.5)
    async def fresh(ctx: Context) -> None:
        ran.append(ctx.job_id)

    stale = await fresh.enqueue()
    kept = await fresh.with_options(ttl=60).enqueue()
    await backend.pass_time(1.0)  # longer than the ttl, before any worker runs
    await backend.worker()
    with pytest.raises(JobExpiredError, match="expired before it started"):
        await stale.result(timeout=10)
    await kept.result(timeout=10)
    assert ran == [kept.id]
    assert (await stale.status()).state is JobState.EXPIRED
    [entry] = await app.dead.list("default", reason="expired")
    assert (entry.letter.id, entry.letter.attempts) == (stale.id, 1)
    assert entry.letter.error is not None
    assert "ttl 0.5s" in entry.letter.error.message


async def test_unknown_task_and_bad_arguments_are_dead_lettered(backend: Backend) -> None:
    producer = backend.other_app()

    @producer.task(name="resize")
    async def resize_v2(ctx: Context, path: str, width: int, height: int) -> None: ...

    @producer.task(name="forgotten")
    async def forgotten(ctx: Context) -> None: ...

    @backend.app.task
    async def resize(ctx: Context, path: str) -> None: ...

    await backend.worker()
    unknown = await forgotten.enqueue()
    bad = await resize_v2.enqueue("a.png", 10, 20)
    for job in (unknown, bad):
        with pytest.raises(JobFailedError):
            await job.result(timeout=10)
    letters = {e.letter.id: e.letter for e in await backend.app.dead.list("default")}
    assert letters[unknown.id].reason is DeadReason.UNKNOWN_TASK
    assert letters[bad.id].reason is DeadReason.BAD_ARGS
    assert letters[unknown.id].error is not None
    assert "unknown task 'forgotten'" in letters[unknown.id].error.message


async def test_a_payload_that_is_not_a_job_is_dead_lettered(backend: Backend) -> None:
    await backend.worker()
    broker = await backend.app.connect()
    assert not await broker.jobs.publish("default", b"{not json", "garbage-1")
    await eventually(lambda: backend.app.dead.counts())
    [entry] = await backend.app.dead.list("default")
    assert (entry.letter.id, entry.letter.reason) == ("garbage-1", DeadReason.BAD_PAYLOAD)
    assert entry.letter.payload == b"{not json"


async def test_a_job_id_is_deduplicated(backend: Backend) -> None:
    app = backend.app
    ran: list[str] = []

    @app.task
    async def charge(ctx: Context, cents: int) -> None:
        ran.append(ctx.job_id)

    first = await charge.with_options(job_id="order-17").enqueue(100)
    second = await charge.with_options(job_id="order-17").enqueue(100)
    assert (first.duplicate, second.duplicate) == (False, True)
    batch = await app.enqueue_many([charge.with_options(job_id="order-17").prepare(100)])
    assert batch[0].duplicate
    await backend.worker()
    await first.result(timeout=10)
    # Within the dedupe window the id stays taken, even after the job ran.
    assert (await charge.with_options(job_id="order-17").enqueue(100)).duplicate
    await asyncio.sleep(0.2)
    assert ran == ["order-17"]


async def test_a_job_above_the_payload_limit_is_refused(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def store(ctx: Context, blob: str) -> None: ...

    limit = (await app.connect()).max_payload
    with pytest.raises(PayloadTooLargeError, match="max_payload"):
        await store.enqueue("x" * limit)
    with pytest.raises(PayloadTooLargeError):
        await store.with_options(delay=5).enqueue("x" * limit)


async def test_headers_travel_with_a_job_through_a_hold_and_a_retry(backend: Backend) -> None:
    broker = await backend.app.connect()
    parent = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    await broker.jobs.publish("default", b'{"task": "t"}', "now-1", "t", parent)
    due = backend.clock.time() - 1
    await broker.held.hold("default", b'{"task": "t"}', "held-1", due, parent)
    held = await broker.held.open()
    try:
        [released] = await eventually(lambda: held.fetch(0.2), what="the held job")
        assert not await released.release()
    finally:
        await held.close()
    source = await broker.jobs.open_source("default", backend.app.queue("default"))
    try:
        for attempt in (1, 2):
            taken = await fetch_all(source, 2, what=f"both jobs, attempt {attempt}")
            for delivery in taken:
                assert delivery.attempt == attempt
                assert delivery.headers is not None
                assert delivery.headers["traceparent"] == parent["traceparent"]
                await (delivery.nak() if attempt == 1 else delivery.ack())
    finally:
        await source.close()


async def fetch_all(source: JobSource, count: int, what: str) -> list[Delivery]:
    """Fetch until `count` deliveries came (they may come in several fetches)."""
    taken: list[Delivery] = []

    async def enough() -> bool:
        taken.extend(await source.fetch_now(count - len(taken)))
        return len(taken) == count

    await eventually(enough, what=what)
    return taken
