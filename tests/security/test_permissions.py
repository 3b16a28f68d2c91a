"""Least privilege on a real server: each role does its job and is refused the rest, clearly."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from aioq import (
    Aarq,
    Context,
    Job,
    JobFailedError,
    PartialEnqueueError,
    PermissionDeniedError,
    Scheduler,
    Task,
)
from aioq._nats import NatsBroker
from aioq.embedded import EmbeddedNats
from aioq.permissions import Role, permissions
from aioq.testing.harness import start_worker

from ..helpers import eventually
from ..procs import run_cli
from .conftest import ServerFactory

PREFIX = "perm"
PASSWORD = "matrix-pw"
USERS = {
    "admin": (Role.ADMIN, ()),
    "producer": (Role.PRODUCER, ("email",)),
    "worker-email": (Role.WORKER, ("email",)),
    "scheduler": (Role.SCHEDULER, ()),
    "dashboard": (Role.DASHBOARD, ()),
}


def _config() -> str:
    entries = [
        f'  {{ user: "{user}", password: "{PASSWORD}"\n'
        f"{permissions(role, queues, PREFIX, _inbox(user)).server_block(indent=4)}\n  }}"
        for user, (role, queues) in USERS.items()
    ]
    return "authorization {\n users = [\n" + "\n".join(entries) + "\n ]\n}"


AppFor = Callable[..., Aarq]


def _inbox(user: str) -> str:
    """Each user receives its replies under its own prefix, and may subscribe to no other."""
    return f"_INBOX_{user}"


@pytest.fixture
def matrix_server(configured_server: ServerFactory) -> EmbeddedNats:
    return configured_server(_config())


@pytest.fixture
async def app_for(matrix_server: EmbeddedNats) -> AsyncIterator[AppFor]:
    server = matrix_server
    apps: list[Aarq] = []

    def make(user: str, inbox_prefix: str | None = None) -> Aarq:
        app = Aarq(
            server.url,
            prefix=PREFIX,
            user=user,
            password=PASSWORD,
            ack_wait=5,
            inbox_prefix=inbox_prefix or _inbox(user),
        )
        _define_tasks(app)
        apps.append(app)
        return app

    # The admin provisions the streams; the other roles only bind them.
    admin = make("admin")
    await admin.connect()
    yield make
    for app in apps:
        await app.close()


def _define_tasks(app: Aarq) -> None:
    @app.task(queue="email")
    async def send(ctx: Context, to: str) -> str:
        return f"sent to {to}"

    @app.task(queue="email", retries=0)
    async def bounce(ctx: Context) -> None:
        raise ValueError("mailbox full")

    @app.task(queue="billing")
    async def charge(ctx: Context, cents: int) -> int:
        return cents


def _task(app: Aarq, name: str) -> Task[..., object]:
    return app.tasks[name]


async def test_each_role_does_its_job(app_for: AppFor) -> None:
    producer, worker_app = app_for("producer"), app_for("worker-email")
    job = await _task(producer, "send").enqueue("ada@example.com")
    delayed = await _task(producer, "send").with_options(delay=0.2).enqueue("bob@example.com")
    worker = await start_worker(worker_app, ["email"], scheduler=False)
    scheduler_app = app_for("scheduler")
    scheduler = asyncio.create_task(Scheduler(scheduler_app, scan_interval=0.2).run())
    try:
        assert await job.result(timeout=10) == "sent to ada@example.com"
        assert await delayed.result(timeout=10) == "sent to bob@example.com"
        dashboard = app_for("dashboard")
        queues = {q.name: q for q in await dashboard.queues()}
        assert "email" in queues
        assert [w.info.id for w in await dashboard.workers()] == [worker.worker.id]
        assert await dashboard.dead.counts() == {}
    finally:
        scheduler.cancel()
        await asyncio.gather(scheduler, return_exceptions=True)
        await worker.stop()


async def test_roles_run_unique_and_dependent_jobs(app_for: AppFor) -> None:
    producer, worker_app = app_for("producer"), app_for("worker-email")
    send = _task(producer, "send")
    first = await send.with_options(unique_key="digest").enqueue("ada@example.com")
    assert (await send.with_options(unique_key="digest").enqueue("x")).id == first.id
    after = await send.with_options(depends_on=[first]).enqueue("bob@example.com")
    worker = await start_worker(worker_app, ["email"], scheduler=False)
    scheduler = asyncio.create_task(Scheduler(app_for("scheduler"), scan_interval=0.2).run())
    try:
        assert await after.result(timeout=10) == "sent to bob@example.com"
        again = await eventually(
            lambda: _fresh(send.with_options(unique_key="digest").enqueue("y"), first.id),
            what="the unique key freed by the worker",
        )
        assert not again.duplicate
    finally:
        scheduler.cancel()
        await asyncio.gather(scheduler, return_exceptions=True)
        await worker.stop()


async def test_roles_run_priority_jobs(app_for: AppFor) -> None:
    producer, worker_app = app_for("producer"), app_for("worker-email")
    send = _task(producer, "send")
    job = await send.with_options(priority=9).enqueue("ada@example.com")
    delayed = await send.with_options(delay=0.2, priority=1).enqueue("bob@example.com")
    worker = await start_worker(worker_app, ["email"], scheduler=False)
    scheduler = asyncio.create_task(Scheduler(app_for("scheduler"), scan_interval=0.2).run())
    try:
        assert await job.result(timeout=10) == "sent to ada@example.com"
        assert await delayed.result(timeout=10) == "sent to bob@example.com"
    finally:
        scheduler.cancel()
        await asyncio.gather(scheduler, return_exceptions=True)
        await worker.stop()


async def _fresh(enqueue: Awaitable[Job[Any]], old: str) -> Job[Any] | None:
    job = await enqueue
    return job if job.id != old else None


async def test_a_producer_cannot_pull_or_enqueue_elsewhere(app_for: AppFor) -> None:
    producer = app_for("producer")
    with pytest.raises(PermissionDeniedError, match=r"create a consumer \(PERM_JOBS\.email\)"):
        await start_worker(producer, ["email"], scheduler=False)
    with pytest.raises(PermissionDeniedError, match=r'"perm\.jobs\.billing"') as denied:
        await _task(producer, "charge").enqueue(100)
    assert "aioq permissions" in str(denied.value)
    with pytest.raises(PartialEnqueueError) as partial:
        await producer.enqueue_many(
            [
                _task(producer, "send").prepare("ada@example.com"),
                _task(producer, "charge").prepare(1),
            ]
        )
    assert len(partial.value.enqueued) == 1
    assert isinstance(partial.value.failed[0][1], PermissionDeniedError)


async def test_a_worker_of_email_cannot_pull_billing(app_for: AppFor) -> None:
    worker_app = app_for("worker-email")
    with pytest.raises(PermissionDeniedError, match=r"PERM_JOBS\.billing"):
        await start_worker(worker_app, ["billing"], scheduler=False)
    with pytest.raises(PermissionDeniedError, match=r"perm\.jobs\.email"):
        await _task(worker_app, "send").enqueue("x@example.com")


async def test_the_dashboard_reads_but_cannot_purge_or_enqueue(app_for: AppFor) -> None:
    job = await _task(app_for("producer"), "bounce").enqueue()
    worker = await start_worker(app_for("worker-email"), ["email"], scheduler=False)
    try:
        with pytest.raises(JobFailedError):
            await job.result(timeout=10)
    finally:
        await worker.stop()
    dashboard = app_for("dashboard")
    assert "email" in [q.name for q in await dashboard.queues()]
    assert await dashboard.dead.counts() == {"email": 1}
    with pytest.raises(PermissionDeniedError, match="purge a stream"):
        await dashboard.dead.purge("email")
    with pytest.raises(PermissionDeniedError):
        await _task(dashboard, "send").enqueue("x@example.com")


async def test_cli_reports_a_denial_as_one_line(
    app_for: AppFor, matrix_server: EmbeddedNats
) -> None:
    await _task(app_for("producer"), "send").enqueue("ada@example.com")
    worker = await start_worker(app_for("worker-email"), ["email"], scheduler=False)
    await worker.stop()  # its queue's consumer stays
    login = ["-s", matrix_server.url, "--prefix", PREFIX, "--password", PASSWORD]
    login += ["--user", "dashboard", "--inbox-prefix", _inbox("dashboard")]
    done = await asyncio.to_thread(run_cli, "queue", "pause", "email", *login)
    assert done.returncode == 1
    assert done.stderr.startswith("error: permission denied:")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = await asyncio.to_thread(run_cli, "queues", *login)
    assert done.returncode == 0, done.stderr
    assert "email" in done.stdout
    # aioq doctor reads all it needs as the dashboard.
    done = await asyncio.to_thread(run_cli, "doctor", *login)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "queue 'email': ack_wait 5s" in done.stdout


async def test_no_user_may_read_another_users_replies(app_for: AppFor) -> None:
    # The producer's user may subscribe only to _INBOX_producer.>: with the shared default
    # prefix it gets no reply at all, and aioq says why at once.
    producer = app_for("producer", inbox_prefix="_INBOX")
    with pytest.raises(PermissionDeniedError, match="may not subscribe to its reply inbox"):
        await producer.connect()
    # Nor may it listen in on the worker's inbox, where fetched jobs arrive.
    sneaky = app_for("producer", inbox_prefix=_inbox("worker-email"))
    with pytest.raises(PermissionDeniedError, match="reply inbox"):
        await sneaky.connect()


async def test_permissions_cli_prints_a_block_the_server_accepts(
    configured_server: ServerFactory,
) -> None:
    done = run_cli("permissions", "--role", "worker", "-q", "email", "-q", "billing")
    assert done.returncode == 0, done.stderr
    assert '"$JS.API.CONSUMER.MSG.NEXT.AIOQ_JOBS.billing"' in done.stdout
    block = done.stdout
    server = configured_server(
        f"authorization {{ users = [ {{ user: w, password: p\n{block}\n }} ] }}"
    )
    assert server.running
    missing = run_cli("permissions", "--role", "worker")
    assert missing.returncode == 1
    assert "needs its queues" in missing.stderr


async def test_a_producer_binds_a_jobs_stream_without_atomic_batches(
    app_for: AppFor, caplog: pytest.LogCaptureFixture
) -> None:
    admin_app = app_for("admin")
    admin = await admin_app.connect()
    assert isinstance(admin, NatsBroker)
    info = await admin.js.stream_info(admin_app.names.jobs_stream)
    await admin.js.update_stream(info.config.evolve(allow_atomic=False))
    producer = app_for("producer")
    jobs = await producer.enqueue_many(_task(producer, "send").prepare(f"{n}@x") for n in range(5))
    assert not any(job.duplicate for job in jobs)
    broker = await producer.connect()
    assert isinstance(broker, NatsBroker)
    assert not broker.jobs.atomic
    assert "does not take atomic batches" in caplog.text
