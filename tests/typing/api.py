"""Type-checked by mypy (see pyproject), never executed: the public API keeps its types.

Lines marked ``type: ignore[...]`` must stay errors; mypy's warn_unused_ignores catches a
regression that would let them through.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aioq import Aarq, Context, Job, PreparedJob, Repeatable, Task, Worker, run_worker

app = Aarq("nats://127.0.0.1:4222")
# The connection options keep their names and types.
secure = Aarq("tls://127.0.0.1:4222", tls_ca="ca.pem", user="u", password="p", connect_timeout=3)
Aarq(tokn="t")  # type: ignore[call-arg]
Aarq(connect_timeout="3s")  # type: ignore[arg-type]
secure.use_connection(servers="nats://b:4222", nkey_seed="seed.nk", prefix="other")
secure.use_connection(user=1)  # type: ignore[arg-type]


@app.task(queue="email", retries=5)
async def send_email(ctx: Context, to: str, subject: str, *, urgent: bool = False) -> int:
    return 1


@app.task
def resize(ctx: Context, path: str, width: int) -> str:
    return path


@app.cron("0 3 * * *", tz="Europe/Paris", args=[1])
async def nightly(ctx: Context, n: int) -> str:
    return str(n)


async def uses() -> None:
    task: Task[[str, str], int] = send_email
    job: Job[int] = await send_email.enqueue("a@example.com", "hi", urgent=True)
    other: Job[str] = await resize.enqueue("x.png", 100)
    prepared: PreparedJob = send_email.prepare("a@example.com", "hi")
    await send_email.with_options(job_id="x", ttl=30).enqueue("a@example.com", "hi")
    await app.enqueue_many([prepared, resize.prepare("y.png", 50)])
    await send_email.enqueue("a@example.com")  # type: ignore[call-arg]
    await send_email.enqueue("a@example.com", 3)  # type: ignore[arg-type]
    await resize.enqueue("x.png", width="wide")  # type: ignore[arg-type]
    await send_email.with_options(job_id="x").enqueue(1, "hi")  # type: ignore[arg-type]
    await send_email.with_options(delay=30).enqueue("a@example.com", "hi")
    await send_email.with_options(delay=timedelta(minutes=1)).enqueue("a@example.com", "hi")
    await send_email.with_options(run_at=datetime.now(UTC)).enqueue("a@example.com", "hi")
    await send_email.with_options(run_at=1.0).enqueue("a@example.com", "hi")  # type: ignore[arg-type]
    hourly: Repeatable = app.add_repeatable(send_email, cron="0 * * * *", args=["a", "hi"])
    cron_task: Task[[int], str] = nightly
    await nightly.enqueue(3)
    await nightly.enqueue("three")  # type: ignore[arg-type]
    await run_worker(app, queues=["email"], concurrency=3, rate_limit=10, rate_interval=1.0)
    worker = Worker(app, rate_limit=5, scheduler=False)
    worker.set_rate_limit(None)
    del task, job, other, hourly, cron_task


def sync_uses() -> None:
    job: Job[int] = send_email.enqueue_sync("a@example.com", "hi", urgent=True)
    named = app.enqueue_sync("send_email", "a@example.com", "hi")
    send_email.with_options(job_id="x").enqueue_sync("a@example.com", "hi")
    send_email.enqueue_sync("a@example.com", 3)  # type: ignore[arg-type]
    send_email.with_options(job_id="x").enqueue_sync(1, "hi")  # type: ignore[arg-type]
    app.close_sync()
    del job, named


async def memory_backend() -> None:
    from aioq.testing import FakeClock, MemoryBroker, start_worker

    clock = FakeClock(auto_advance=0.01)
    memory_app = Aarq()
    memory_app.use_broker(MemoryBroker(clock=clock))
    running = await start_worker(memory_app, ["email"])
    clock.advance(3600)
    await running.stop()
