"""Producers outside one event loop: successive ``asyncio.run`` calls, threads, sync code.

The sync tests are plain functions: no event loop runs in them, as in a script, a CLI, a
Django or Flask view, or a thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from aioq import Aarq, Context, Job, Task
from aioq.errors import BrokerUnavailableError, EnqueueError, UnknownTaskError
from aioq.testing import start_worker

from ..conftest import _delete_prefix

pytestmark = pytest.mark.timeout(60)


def define_add(app: Aarq) -> Task[[int, int], int]:
    @app.task
    async def add(ctx: Context, a: int, b: int) -> int:
        return a + b

    return add


@pytest.fixture
def sync_app(nats_url: str, prefix: str) -> Iterator[Aarq]:
    """An app used from plain (non-async) tests; its streams are deleted afterwards."""
    application = Aarq(nats_url, prefix=prefix, ack_wait=2.0)
    yield application
    application.close_sync()
    asyncio.run(_delete_prefix(nats_url, application))


def sync_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "aioq-enqueue-sync"]


async def run_all(app: Aarq, ids: list[str]) -> list[object]:
    """Run the queue dry with a burst worker; the results of the jobs `ids`."""
    running = await start_worker(app, "default", burst=True)
    await running.wait_stopped(20)
    results = [await (await app.job(job_id)).result(timeout=5) for job_id in ids]
    await app.close()
    return results


def test_successive_asyncio_runs_each_enqueue_on_a_connection_of_their_own(
    sync_app: Aarq,
) -> None:
    add = define_add(sync_app)
    first = asyncio.run(add.enqueue(1, 2))
    # The first loop is gone: its connection closed with it, none is left half-open.
    assert not sync_app.connected
    second = asyncio.run(add.enqueue(3, 4))
    assert first.id != second.id
    assert asyncio.run(run_all(sync_app, [first.id, second.id])) == [3, 7]


async def test_a_thread_running_its_own_loop_gets_a_connection_of_its_own(app: Aarq) -> None:
    add = define_add(app)
    main = await app.connect()

    async def in_the_thread() -> Job[int]:
        job = await add.enqueue(2, 2)
        assert await app.connect() is not main
        await app.close()  # closes the thread loop's connection only
        return job

    there = await asyncio.to_thread(asyncio.run, in_the_thread())
    assert await app.connect() is main
    here = await add.enqueue(1, 1)
    for job in (here, there):
        assert (await app.job(job.id)).task == "add"


def test_enqueue_sync_from_plain_code_returns_the_job_a_worker_runs(sync_app: Aarq) -> None:
    add = define_add(sync_app)
    job = add.enqueue_sync(2, 3)
    assert isinstance(job, Job)
    assert (job.task, job.queue, job.duplicate) == ("add", "default", False)
    assert asyncio.run(run_all(sync_app, [job.id])) == [5]


def test_enqueue_sync_from_eight_threads_at_once(sync_app: Aarq) -> None:
    add = define_add(sync_app)
    start = threading.Barrier(8)

    def enqueue(n: int) -> str:
        start.wait(timeout=10)
        return add.enqueue_sync(n, n).id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(enqueue, range(8)))
    assert len(set(ids)) == 8
    assert len(sync_threads()) == 1  # one loop serves every thread
    assert asyncio.run(run_all(sync_app, ids)) == [n + n for n in range(8)]


def test_with_options_enqueue_sync_keeps_the_job_id_and_deduplicates(sync_app: Aarq) -> None:
    add = define_add(sync_app)
    job = add.with_options(job_id="order-7").enqueue_sync(1, 2)
    assert (job.id, job.duplicate) == ("order-7", False)
    assert add.with_options(job_id="order-7").enqueue_sync(1, 2).duplicate


def test_app_enqueue_sync_by_task_name(sync_app: Aarq) -> None:
    define_add(sync_app)
    job = sync_app.enqueue_sync("add", 4, 5)
    assert job.task == "add"
    with pytest.raises(UnknownTaskError, match="unknown task 'nope'"):
        sync_app.enqueue_sync("nope")
    assert asyncio.run(run_all(sync_app, [job.id])) == [9]


def test_close_sync_ends_the_thread_and_a_later_enqueue_sync_starts_again(
    sync_app: Aarq,
) -> None:
    add = define_add(sync_app)
    add.enqueue_sync(1, 1)
    assert sync_app.connected
    sync_app.close_sync()
    assert sync_threads() == []
    assert not sync_app.connected
    job = add.enqueue_sync(2, 2)
    assert asyncio.run(run_all(sync_app, [job.id])) == [4]


async def test_enqueue_sync_inside_a_running_loop_says_to_await_enqueue(app: Aarq) -> None:
    add = define_add(app)
    with pytest.raises(RuntimeError, match=r"running event loop.*`await add\.enqueue\(\.\.\.\)`"):
        add.enqueue_sync(1, 2)
    with pytest.raises(RuntimeError, match=r"`await app\.enqueue\('add', \.\.\.\)`"):
        app.enqueue_sync("add", 1, 2)
    with pytest.raises(RuntimeError, match="running event loop"):
        add.with_options(job_id="x").enqueue_sync(1, 2)
    assert not app.connected  # nothing was published


def test_enqueue_sync_without_a_server_fails_with_the_reason() -> None:
    app = Aarq("nats://127.0.0.1:1", connect_timeout=0.5)
    add = define_add(app)
    try:
        with pytest.raises(BrokerUnavailableError, match="cannot reach NATS"):
            add.enqueue_sync(1, 2)
    finally:
        app.close_sync()


def test_enqueue_sync_gives_up_after_sync_timeout_on_a_server_that_never_answers() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        app = Aarq(f"nats://127.0.0.1:{silent.getsockname()[1]}", connect_timeout=30)
        app.sync_timeout = 0.3
        add = define_add(app)
        try:
            with pytest.raises(EnqueueError, match=r"late-1.*within 0.3s.*same job id"):
                add.with_options(job_id="late-1").enqueue_sync(1, 2)
        finally:
            app.close_sync()
