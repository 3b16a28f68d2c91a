"""What the worker does with jobs, on a real server: retries, dead letters, timeouts, TTLs,
leases, threads, the context, concurrency, queues and idempotent enqueue."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from aioq import Aarq, Context, Retry, State
from aioq.wire import DeadLetter, DeadReason

from ..conftest import WorkerFactory
from ..helpers import eventually


async def dead_letters(nc: NatsClient, app: Aarq, queue: str = "default") -> list[DeadLetter]:
    """Every record in the dead-letter stream for `queue`, read with the raw client."""
    js = nc.jetstream()
    records: list[DeadLetter] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(
                app.names.dead_stream, seq=seq, subject=app.names.dead_subject(queue), next=True
            )
        except NotFoundError:
            return records
        assert msg.data is not None
        records.append(msgspec.json.decode(msg.data, type=DeadLetter))
        assert msg.seq is not None
        seq = msg.seq + 1


async def wait_dead(
    nc: NatsClient, app: Aarq, count: int, queue: str = "default", timeout: float = 10.0
) -> list[DeadLetter]:
    """Wait until `queue` has `count` dead letters and return them."""
    records: list[DeadLetter] = []

    async def enough() -> bool:
        nonlocal records
        records = await dead_letters(nc, app, queue)
        return len(records) >= count

    await eventually(enough, timeout)
    return records


async def stored_jobs(nc: NatsClient, app: Aarq) -> int:
    """Messages left in the app's jobs stream."""
    info = await nc.jetstream().stream_info(app.names.jobs_stream)
    return info.state.messages


async def wait_jobs_stream_empty(nc: NatsClient, app: Aarq) -> None:
    async def empty() -> bool:
        return await stored_jobs(nc, app) == 0

    await eventually(empty)


async def stored_payload(nc: NatsClient, app: Aarq, queue: str = "default") -> bytes:
    """The bytes of the last job stored on `queue`, as the worker will receive them."""
    subject = app.names.job_subject(queue)
    msg = await nc.jetstream().get_last_msg(app.names.jobs_stream, subject)
    assert msg.data is not None
    return msg.data


# -- retries and dead letters -------------------------------------------------------------


async def test_retries_then_success(app: Aarq, start_worker: WorkerFactory, nc: NatsClient) -> None:
    attempts: list[int] = []
    done: list[int] = []

    @app.task(retries=3, backoff=0.05)
    async def flaky(ctx: Context, n: int) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"flaky failure {ctx.attempt}")
        done.append(n)
        return n

    job = await flaky.enqueue(7)
    worker = await start_worker(concurrency=2)

    await eventually(lambda: done)
    assert attempts == [1, 2, 3]
    assert done == [7]
    await eventually(lambda: worker.stats.processed == 1)
    assert worker.stats.retried == 2
    assert worker.stats.failed == 0
    await wait_jobs_stream_empty(nc, app)
    assert await dead_letters(nc, app) == []
    assert job.id


async def test_retries_exhausted_go_to_dead_letters(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    attempts: list[int] = []

    @app.task(retries=2, backoff=0.05)
    async def doomed(ctx: Context, who: str) -> None:
        attempts.append(ctx.attempt)
        raise ValueError(f"cannot greet {who}")

    job = await doomed.enqueue("bob")
    payload = await stored_payload(nc, app)
    worker = await start_worker()

    [record] = await wait_dead(nc, app, 1)
    assert attempts == [1, 2, 3]
    assert record.reason is DeadReason.FAILED
    assert record.id == job.id
    assert record.queue == "default"
    assert record.task == "doomed"
    assert record.attempts == 3
    assert record.payload == payload
    assert not record.payload_truncated
    assert record.worker == worker.id
    assert record.error is not None
    assert record.error.type == "ValueError"
    assert record.error.message == "cannot greet bob"
    assert "Traceback" in record.error.traceback
    assert "raise ValueError" in record.error.traceback
    assert record.enqueued_at is not None
    assert record.dead_at >= record.enqueued_at

    await wait_jobs_stream_empty(nc, app)
    await eventually(lambda: worker.stats.failed == 1)
    assert worker.stats.processed == 0
    assert worker.stats.retried == 2
    # The dead letter is on <prefix>.dead.<queue>.<job id>, in <PREFIX>_DEAD.
    last = await nc.jetstream().get_last_msg(
        f"{app.prefix.upper()}_DEAD", f"{app.prefix}.dead.default.{job.id}"
    )
    assert last.data is not None
    assert msgspec.json.decode(last.data, type=DeadLetter).id == job.id


async def test_raise_retry_asks_for_another_attempt(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    starts: dict[int, float] = {}
    done: list[str] = []

    # No backoff of its own: any wait between attempts comes from Retry(delay=...).
    @app.task(retries=5, backoff=0)
    async def polite(ctx: Context) -> None:
        starts[ctx.attempt] = time.monotonic()
        if ctx.attempt < 3:
            raise Retry(delay=0.3)
        done.append(ctx.job_id)

    job = await polite.enqueue()
    await start_worker()
    await eventually(lambda: done)
    assert sorted(starts) == [1, 2, 3]
    assert done == [job.id]
    # The server does not redeliver before the requested delay.
    assert starts[2] - starts[1] >= 0.25
    assert starts[3] - starts[2] >= 0.25
    await wait_jobs_stream_empty(nc, app)


async def test_retry_counts_against_retries(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    attempts: list[int] = []

    @app.task(retries=1)
    async def stubborn(ctx: Context) -> None:
        attempts.append(ctx.attempt)
        raise Retry(delay=0.05)

    job = await stubborn.enqueue()
    await start_worker()
    [record] = await wait_dead(nc, app, 1)
    assert attempts == [1, 2]
    assert record.id == job.id
    assert record.reason is DeadReason.FAILED
    assert record.attempts == 2
    assert record.error is not None
    assert record.error.type == "Retry"
    await wait_jobs_stream_empty(nc, app)


async def test_no_retry_for_dead_letters_on_first_attempt(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    attempts: list[int] = []
    other_attempts: list[int] = []

    @app.task(retries=5, backoff=0.05, no_retry_for=(ValueError,))
    async def validate(ctx: Context, value: str) -> None:
        attempts.append(ctx.attempt)
        if value == "bad":
            raise ValueError("invalid value")
        # Other errors are still retried.
        other_attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("transient")

    job = await validate.enqueue("bad")
    await validate.enqueue("ok")
    worker = await start_worker()
    [record] = await wait_dead(nc, app, 1)
    assert record.id == job.id
    assert record.attempts == 1
    assert record.reason is DeadReason.FAILED
    assert record.error is not None
    assert record.error.type == "ValueError"
    await eventually(lambda: worker.stats.processed == 1)
    assert other_attempts == [1, 2]
    assert sorted(attempts) == [1, 1, 2]
    await wait_jobs_stream_empty(nc, app)


# -- timeout ------------------------------------------------------------------------------


async def test_timeout_cancels_the_run_and_retries(app: Aarq, start_worker: WorkerFactory) -> None:
    cancelled: list[int] = []
    finished: list[int] = []

    @app.task(timeout=0.3, retries=2, backoff=0.05)
    async def slow_first(ctx: Context) -> None:
        try:
            if ctx.attempt == 1:
                await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(ctx.attempt)
            raise
        finished.append(ctx.attempt)

    await slow_first.enqueue()
    worker = await start_worker()
    await eventually(lambda: finished)
    assert cancelled == [1]
    assert finished == [2]
    assert worker.stats.retried == 1


async def test_timeout_without_retries_dead_letters_timeout_error(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    cancelled: list[int] = []
    finished: list[int] = []

    @app.task(timeout=0.3, retries=0)
    async def hangs(ctx: Context) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(ctx.attempt)
            raise
        finished.append(ctx.attempt)

    job = await hangs.enqueue()
    await start_worker()
    [record] = await wait_dead(nc, app, 1)
    assert cancelled == [1]
    assert finished == []
    assert record.id == job.id
    assert record.reason is DeadReason.FAILED
    assert record.attempts == 1
    assert record.error is not None
    assert record.error.type == "TimeoutError"
    assert "0.3" in record.error.message
    await wait_jobs_stream_empty(nc, app)


async def test_timeout_per_call(app: Aarq, start_worker: WorkerFactory, nc: NatsClient) -> None:
    cancelled: list[str] = []

    @app.task(retries=0)
    async def unbounded(ctx: Context, name: str) -> None:
        try:
            await asyncio.sleep(30 if name == "slow" else 0)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    job = await unbounded.with_options(timeout=0.3).enqueue("slow")
    await start_worker()
    [record] = await wait_dead(nc, app, 1)
    assert cancelled == ["slow"]
    assert record.id == job.id
    assert record.error is not None
    assert record.error.type == "TimeoutError"


async def test_task_raising_timeout_error_itself_is_not_a_deadline(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    @app.task(timeout=30, retries=0)
    async def calls_out(ctx: Context) -> None:
        raise TimeoutError("upstream did not answer")

    await calls_out.enqueue()
    await start_worker()
    [record] = await wait_dead(nc, app, 1)
    assert record.error is not None
    assert record.error.type == "TimeoutError"
    assert record.error.message == "upstream did not answer"


# -- ttl ----------------------------------------------------------------------------------


async def test_ttl_expired_jobs_are_dead_lettered_not_run(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    ran: list[int] = []

    @app.task(ttl=0.4)
    async def short_lived(ctx: Context, n: int) -> None:
        ran.append(n)

    @app.task(ttl=60)
    async def long_lived(ctx: Context, n: int) -> None:
        ran.append(n)

    # Enqueued while no worker runs; the first two wait longer than their ttl.
    expired_by_task = await short_lived.enqueue(1)
    expired_by_call = await long_lived.with_options(ttl=0.4).enqueue(2)
    kept_by_call = await short_lived.with_options(ttl=60).enqueue(3)
    await asyncio.sleep(1.0)
    await long_lived.enqueue(4)

    worker = await start_worker()
    records = await wait_dead(nc, app, 2)
    await eventually(lambda: len(ran) == 2)
    await wait_jobs_stream_empty(nc, app)
    assert sorted(ran) == [3, 4]
    assert {r.id for r in records} == {expired_by_task.id, expired_by_call.id}
    for record in records:
        assert record.reason is DeadReason.EXPIRED
        assert record.attempts == 1
        assert record.error is not None
        assert "ttl" in record.error.message
    assert kept_by_call.id not in {r.id for r in records}
    assert worker.stats.processed == 2
    assert worker.stats.failed == 2


async def test_ttl_within_limit_runs(app: Aarq, start_worker: WorkerFactory) -> None:
    ran: list[str] = []

    @app.task(ttl=timedelta(seconds=30))
    async def prompt(ctx: Context) -> None:
        ran.append(ctx.job_id)

    await start_worker()
    job = await prompt.with_options(ttl=10).enqueue()
    await eventually(lambda: ran)
    assert ran == [job.id]


# -- leases -------------------------------------------------------------------------------


async def test_long_job_stays_leased_and_is_delivered_once(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    app.queue("long", ack_wait=1)
    starts: list[int] = []
    finished: list[int] = []

    @app.task(queue="long", retries=5, backoff=0.05)
    async def crunch(ctx: Context) -> None:
        starts.append(ctx.attempt)
        await asyncio.sleep(6)  # six times the lease
        finished.append(ctx.attempt)

    await crunch.enqueue()
    # Free slots, so a redelivery would be fetched and started at once.
    worker = await start_worker(queues=["long"], concurrency=3)
    js = nc.jetstream()
    consumer = app.names.consumer("long")
    info = await js.consumer_info(app.names.jobs_stream, consumer)
    assert info.config.ack_wait == pytest.approx(1.0)

    await eventually(lambda: finished, timeout=20)
    assert starts == [1]
    assert finished == [1]
    info = await js.consumer_info(app.names.jobs_stream, consumer)
    assert info.num_redelivered == 0
    assert info.delivered.consumer_seq == 1
    await wait_jobs_stream_empty(nc, app)
    assert worker.stats.processed == 1


# -- sync tasks ---------------------------------------------------------------------------


async def test_plain_def_tasks_run_in_a_thread(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    loop_thread = threading.get_ident()
    threads: list[int] = []
    attempts: list[int] = []
    done: list[int] = []

    @app.task(retries=2, backoff=0.05)
    def blocking(ctx: Context, n: int) -> int:
        threads.append(threading.get_ident())
        attempts.append(ctx.attempt)
        time.sleep(0.05)
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        done.append(n)
        return n

    @app.task(retries=0)
    def broken(ctx: Context) -> None:
        threads.append(threading.get_ident())
        raise KeyError("missing")

    @app.task(retries=2)
    def asks_again(ctx: Context) -> None:
        threads.append(threading.get_ident())
        if ctx.attempt == 1:
            raise Retry(delay=0.05)
        done.append(-ctx.attempt)

    assert not blocking.is_async
    await blocking.enqueue(5)
    failed = await broken.enqueue()
    await asks_again.enqueue()
    worker = await start_worker(concurrency=3)

    [record] = await wait_dead(nc, app, 1)
    await eventually(lambda: len(done) == 2)
    assert sorted(done) == [-2, 5]
    assert attempts == [1, 2]
    assert threads
    assert loop_thread not in threads
    assert record.id == failed.id
    assert record.error is not None
    assert record.error.type == "KeyError"
    assert "raise KeyError" in record.error.traceback
    await wait_jobs_stream_empty(nc, app)
    assert worker.stats.processed == 2
    assert worker.stats.failed == 1


async def test_sync_task_does_not_block_the_loop(app: Aarq, start_worker: WorkerFactory) -> None:
    release = threading.Event()
    seen: list[str] = []

    @app.task
    def waits(ctx: Context) -> None:
        assert release.wait(10)
        seen.append("sync")

    @app.task
    async def quick(ctx: Context) -> None:
        seen.append("async")

    await waits.enqueue()
    await start_worker(concurrency=2)
    await quick.enqueue()
    # The async job runs while the thread is still blocked.
    await eventually(lambda: seen == ["async"])
    release.set()
    await eventually(lambda: seen == ["async", "sync"])


async def test_sync_tasks_use_the_whole_concurrency(app: Aarq, start_worker: WorkerFactory) -> None:
    # Ten runs that can only finish together: needs ten threads at once, more than the
    # event loop's default executor has on a small machine (min(32, cpus + 4)).
    barrier = threading.Barrier(10, timeout=5)
    done: list[int] = []

    @app.task(retries=0)
    def meet(ctx: Context, n: int) -> None:
        barrier.wait()
        done.append(n)

    await app.enqueue_many(meet.prepare(i) for i in range(10))
    await start_worker(concurrency=10)
    await eventually(lambda: len(done) == 10, timeout=15)
    assert sorted(done) == list(range(10))


async def test_sync_timeout_fails_the_attempt_and_keeps_the_slot(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    lock = threading.Lock()
    running = 0
    most = 0
    starts: list[int] = []
    ends: list[int] = []

    @app.task(timeout=0.2, retries=1, backoff=0.01)
    def stuck(ctx: Context) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        starts.append(ctx.attempt)
        time.sleep(0.5)  # cannot be interrupted
        with lock:
            running -= 1
        ends.append(ctx.attempt)

    job = await stuck.enqueue()
    await start_worker(concurrency=1)
    [record] = await wait_dead(nc, app, 1)
    assert record.id == job.id
    assert record.attempts == 2
    assert record.error is not None
    assert record.error.type == "TimeoutError"
    await eventually(lambda: len(ends) == 2)
    # The retry did not start while the timed-out thread still ran: one run at a time.
    assert starts == [1, 2]
    assert most == 1


async def test_job_cancelled_by_forced_stop_runs_on_the_next_worker(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    starts: list[int] = []
    cancelled: list[int] = []
    finished: list[int] = []

    @app.task(retries=0)
    async def interrupted(ctx: Context) -> None:
        starts.append(ctx.attempt)
        try:
            if len(starts) == 1:
                await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(ctx.attempt)
            raise
        finished.append(ctx.attempt)

    await interrupted.enqueue()
    first = await start_worker(shutdown_grace=0.05)
    await eventually(lambda: starts)
    first.stop()
    await eventually(lambda: cancelled)
    await start_worker()

    async def settled() -> bool:
        return bool(finished) or bool(await dead_letters(nc, app))

    await eventually(settled)
    assert await dead_letters(nc, app) == []
    assert finished == [2]


# -- context and hooks --------------------------------------------------------------------


async def test_context_and_app_state(app: Aarq, start_worker: WorkerFactory) -> None:
    events: list[str] = []
    seen: list[dict[str, Any]] = []

    @app.on_startup
    async def open_client(state: State) -> None:
        events.append("startup")
        state.client = "shared-client"

    @app.on_shutdown
    async def close_client(state: State) -> None:
        events.append(f"shutdown:{state.client}")
        state.client = None

    @app.task(queue="ctxq", retries=4)
    async def inspect(ctx: Context, x: int) -> None:
        events.append("job")
        seen.append(
            {
                "job_id": ctx.job_id,
                "task": ctx.task,
                "queue": ctx.queue,
                "attempt": ctx.attempt,
                "max_attempts": ctx.max_attempts,
                "enqueued_at": ctx.enqueued_at,
                "client": ctx.state.client,
                "worker_id": ctx.worker_id,
                "app": ctx.app,
                "x": x,
            }
        )

    before = datetime.now(UTC)
    job = await inspect.enqueue(42)
    worker = await start_worker(queues=["ctxq"])
    await eventually(lambda: seen)
    [ctx] = seen
    assert ctx["job_id"] == job.id
    assert ctx["task"] == "inspect"
    assert ctx["queue"] == "ctxq"
    assert ctx["attempt"] == 1
    assert ctx["max_attempts"] == 5
    assert ctx["x"] == 42
    assert ctx["client"] == "shared-client"
    assert ctx["worker_id"] == worker.id
    assert ctx["app"] is app
    enqueued_at = ctx["enqueued_at"]
    assert isinstance(enqueued_at, datetime)
    assert enqueued_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= enqueued_at <= datetime.now(UTC) + timedelta(seconds=5)

    worker.stop()
    await eventually(lambda: events[-1].startswith("shutdown"))
    assert events == ["startup", "job", "shutdown:shared-client"]
    assert app.state.client is None


# -- concurrency --------------------------------------------------------------------------


async def test_worker_never_holds_more_than_concurrency(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    running = 0
    most = 0
    done = 0

    @app.task(queue="busy")
    async def slow(ctx: Context, n: int) -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.1)
        finally:
            running -= 1
        done += 1

    await app.enqueue_many(slow.prepare(i) for i in range(50))
    js = nc.jetstream()
    pending: list[int] = []
    # Stopped by a flag, not by cancelling: on Python 3.11 a cancel that meets the answer
    # of the request in flight can be lost, and the sampler would run on.
    sampling = True

    async def sample() -> None:
        while sampling:
            try:
                info = await js.consumer_info(app.names.jobs_stream, app.names.consumer("busy"))
            except NotFoundError:  # the worker has not created its consumer yet
                pass
            else:
                pending.append(info.num_ack_pending)
            await asyncio.sleep(0.01)

    worker = await start_worker(queues=["busy"], concurrency=5)
    sampler = asyncio.create_task(sample())
    try:
        await eventually(lambda: done == 50, timeout=20)
    finally:
        sampling = False
    await sampler  # re-raises whatever stopped the sampling early
    assert most == 5
    assert pending
    # The worker sends acks without waiting for the server, which applies them on its own
    # schedule: its count may include a few acks still in flight, never a runaway.
    assert max(pending) <= 2 * 5, pending
    assert max(pending) >= 1
    assert worker.stats.processed == 50
    await wait_jobs_stream_empty(nc, app)


# -- queues, idempotency, batches ---------------------------------------------------------


async def test_one_worker_serves_several_queues(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    seen: list[tuple[str, str]] = []

    @app.task(queue="alpha")
    async def on_alpha(ctx: Context) -> None:
        seen.append((ctx.task, ctx.queue))

    @app.task(queue="beta")
    async def on_beta(ctx: Context) -> None:
        seen.append((ctx.task, ctx.queue))

    @app.task(queue="gamma")
    async def on_gamma(ctx: Context) -> None:
        seen.append((ctx.task, ctx.queue))

    for _ in range(3):
        await on_alpha.enqueue()
        await on_beta.enqueue()
    await on_gamma.enqueue()
    await start_worker(queues=["alpha", "beta"], concurrency=4)
    await eventually(lambda: len(seen) == 6)
    assert sorted(seen) == [("on_alpha", "alpha")] * 3 + [("on_beta", "beta")] * 3

    # The gamma job is not served by this worker and stays stored.
    async def only_gamma_left() -> bool:
        return await stored_jobs(nc, app) == 1

    await eventually(only_gamma_left)
    await asyncio.sleep(0.2)
    assert ("on_gamma", "gamma") not in seen


async def test_caller_chosen_job_id_is_idempotent(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    ran: list[tuple[str, int]] = []

    @app.task
    async def charge(ctx: Context, amount: int) -> None:
        ran.append((ctx.job_id, amount))

    first = await charge.with_options(job_id="order-17").enqueue(100)
    second = await charge.with_options(job_id="order-17").enqueue(100)
    assert first.id == second.id == "order-17"
    assert not first.duplicate
    assert second.duplicate
    assert await stored_jobs(nc, app) == 1

    await start_worker()
    await eventually(lambda: ran)
    await wait_jobs_stream_empty(nc, app)
    # Within the dedupe window the id stays taken, even after the job ran.
    third = await charge.with_options(job_id="order-17").enqueue(100)
    assert third.duplicate
    await asyncio.sleep(0.3)
    assert ran == [("order-17", 100)]


async def test_enqueue_many_runs_every_job_once(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    seen: list[int] = []

    @app.task
    async def item(ctx: Context, n: int) -> None:
        seen.append(n)

    jobs = await app.enqueue_many(item.prepare(i) for i in range(200))
    assert len(jobs) == 200
    assert len({j.id for j in jobs}) == 200
    assert not any(j.duplicate for j in jobs)
    worker = await start_worker(concurrency=20)
    await eventually(lambda: len(seen) >= 200, timeout=20)
    await wait_jobs_stream_empty(nc, app)
    assert sorted(seen) == list(range(200))
    assert worker.stats.processed == 200


# -- raw publishers -----------------------------------------------------------------------


async def test_minimal_json_from_a_raw_client_runs(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    calls: list[dict[str, Any]] = []

    @app.task(queue="email", retries=2, backoff=0.05)
    async def send_email(ctx: Context, to: str, subject: str, *, urgent: bool = False) -> None:
        calls.append(
            {
                "args": (to, subject, urgent),
                "job_id": ctx.job_id,
                "attempt": ctx.attempt,
                "enqueued_at": ctx.enqueued_at,
            }
        )
        if ctx.attempt == 1:
            raise Retry(delay=0.05)  # to see the id on a second delivery

    await start_worker(queues=["email"])
    js = nc.jetstream()
    subject = f"{app.prefix}.jobs.email"
    before = datetime.now(UTC) - timedelta(seconds=5)
    await js.publish(
        subject,
        b'{"task": "send_email", "args": ["a@example.com", "hi"], "kwargs": {"urgent": true}}',
    )
    await js.publish(subject, b'{"task":"send_email","args":["b@example.com","yo"]}')
    await js.publish(
        subject,
        b'{"task":"send_email","args":[],"kwargs":{"to":"c@example.com","subject":"kw"}}',
        headers={"Nats-Msg-Id": "client-chosen"},
    )
    await eventually(lambda: len(calls) == 6)
    await wait_jobs_stream_empty(nc, app)

    by_args: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for call in calls:
        by_args.setdefault(call["args"], []).append(call)
    assert set(by_args) == {
        ("a@example.com", "hi", True),
        ("b@example.com", "yo", False),
        ("c@example.com", "kw", False),
    }
    ids = set()
    for runs in by_args.values():
        assert [r["attempt"] for r in runs] == [1, 2]
        first, second = (r["job_id"] for r in runs)
        assert first  # derived when the publisher sets none
        assert first == second  # stable across deliveries
        ids.add(first)
        for r in runs:
            assert r["enqueued_at"].tzinfo is not None
            assert r["enqueued_at"] >= before
    assert len(ids) == 3  # one id per job
    assert by_args[("c@example.com", "kw", False)][0]["job_id"] == "client-chosen"


# -- concurrency over several queues -------------------------------------------------------


async def test_one_busy_queue_uses_every_slot(app: Aarq, start_worker: WorkerFactory) -> None:
    running = most = done = 0

    @app.task(queue="busy")
    async def slow(ctx: Context, n: int) -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.2)
        finally:
            running -= 1
            done += 1

    await start_worker(queues=["busy", "idle1", "idle2"], concurrency=5)
    await app.enqueue_many(slow.prepare(i) for i in range(5))
    await eventually(lambda: done == 5)
    # By now the two idle queues wait for their next job, and hold no slot while they do.
    most = 0
    await app.enqueue_many(slow.prepare(i) for i in range(15))
    await eventually(lambda: done == 20, timeout=15)
    assert most == 5


async def test_busy_queues_share_the_slots(app: Aarq, start_worker: WorkerFactory) -> None:
    # Queue "long" holds each slot it gets for a long time, "short" frees its slots often:
    # without a fair share the long jobs would end up holding every slot.
    running = {"short": 0, "long": 0}
    most = {"short": 0, "long": 0}
    shares: list[tuple[int, int]] = []
    long_started = False

    async def run(queue: str, seconds: float) -> None:
        running[queue] += 1
        most[queue] = max(most[queue], running[queue])
        if long_started:
            shares.append((running["short"], running["long"]))
        try:
            await asyncio.sleep(seconds)
        finally:
            running[queue] -= 1

    @app.task(queue="short")
    async def quick(ctx: Context) -> None:
        await run("short", 0.05)

    @app.task(queue="long")
    async def lengthy(ctx: Context) -> None:
        nonlocal long_started
        long_started = True
        await run("long", 0.5)

    await app.enqueue_many(quick.prepare() for _ in range(120))
    worker = await start_worker(queues=["short", "long", "idle"], concurrency=4)
    await eventually(lambda: running["short"] == 4)
    await app.enqueue_many(lengthy.prepare() for _ in range(8))
    await eventually(lambda: worker.stats.processed == 128, timeout=20)
    assert max(s + lo for s, lo in shares) <= 4
    # While both had jobs, each ran about half the slots: neither was starved.
    busy = [(s, lo) for s, lo in shares if s and lo]
    assert busy, shares
    assert Counter(busy).most_common(1)[0][0] == (2, 2), busy


async def test_more_queues_than_slots(app: Aarq, start_worker: WorkerFactory) -> None:
    seen: list[str] = []

    @app.task(queue="q1")
    async def first(ctx: Context) -> None:
        seen.append(ctx.queue)

    @app.task(queue="q3")
    async def third(ctx: Context) -> None:
        seen.append(ctx.queue)

    await first.enqueue()
    await third.enqueue()
    await start_worker(queues=["q1", "q2", "q3"], concurrency=1)
    await eventually(lambda: sorted(seen) == ["q1", "q3"])


# -- a blocked event loop ------------------------------------------------------------------


async def test_blocked_event_loop_is_reported_once(
    app: Aarq, start_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task()
    async def blocking(ctx: Context) -> None:
        time.sleep(1.2)  # noqa: ASYNC251 - the mistake under test

    caplog.set_level(logging.WARNING, logger="aioq.worker")
    await start_worker(stall_warning=0.3)
    job = await blocking.enqueue()
    await job.result(timeout=10)
    await eventually(lambda: "answered again" in caplog.text)
    warnings = [r.getMessage() for r in caplog.records if "has been blocked" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"{job.id} (task=blocking)" in warnings[0]
    assert "examples/cpu_bound.py" in warnings[0]
