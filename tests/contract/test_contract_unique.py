"""Contract: unique jobs. One queued or running job per key, freed when the job ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from aioq import Context, Job, JobState
from aioq.options import CallOptions, UniqueSpec

from ..helpers import eventually
from .conftest import Backend


async def test_concurrent_producers_create_one_job(backend: Backend) -> None:
    apps = [backend.app, backend.other_app()]
    tasks = []
    for app in apps:

        @app.task(name="report")
        async def report(ctx: Context, day: str) -> str:
            return f"{day} done"

        tasks.append(report)
    calls = [t.with_options(unique_key="daily") for t in tasks]
    jobs = await asyncio.gather(*(calls[i % 2].enqueue(f"d{i}") for i in range(20)))
    assert len({job.id for job in jobs}) == 1
    assert sum(not job.duplicate for job in jobs) == 1
    await backend.worker()
    first = jobs[0]
    assert (await first.result(timeout=10)).endswith("done")
    held = (await first.status()).unique_key  # the key in the bucket: a digest of task and key
    assert held is not None
    assert held == UniqueSpec.of("report", CallOptions(unique_key="daily"), b"").key
    # The result is on record just before the worker frees the key.
    again = await eventually(lambda: _fresh(calls[1].enqueue("d99"), first.id), what="key freed")
    assert not again.duplicate
    assert await again.result(timeout=10) == "d99 done"


async def _fresh(enqueue: Awaitable[Job[Any]], old: str) -> Job[Any] | None:
    job = await enqueue
    return job if job.id != old else None


async def test_key_held_while_running_then_freed(backend: Backend) -> None:
    app = backend.app
    gate = asyncio.Event()

    @app.task
    async def sync_account(ctx: Context, account: int) -> int:
        await gate.wait()
        return account

    await backend.worker()
    call = sync_account.with_options(unique=True)
    first = await call.enqueue(7)
    await eventually(lambda: _state_is(first, JobState.RUNNING), what="job running")
    second = await call.enqueue(7)
    assert (second.id, second.duplicate) == (first.id, True)
    other_arguments = await call.enqueue(8)
    assert other_arguments.id != first.id
    assert not other_arguments.duplicate
    gate.set()
    assert await first.result(timeout=10) == 7
    third = await eventually(lambda: _fresh(call.enqueue(7), first.id), what="key freed")
    assert not third.duplicate
    assert await third.result(timeout=10) == 7


async def _state_is(job: Job[Any], state: JobState) -> bool:
    return (await job.status()).state == state


async def test_failed_and_aborted_jobs_free_their_key(backend: Backend) -> None:
    app = backend.app

    @app.task(retries=0)
    async def boom(ctx: Context) -> None:
        raise RuntimeError("no")

    call = boom.with_options(unique_key="boom")
    queued = await call.enqueue()
    # Removed from its queue without a worker: its record says aborted, so the key is free.
    assert await queued.abort()
    failing = await call.enqueue()
    assert failing.id != queued.id
    assert not failing.duplicate
    await backend.worker()
    await eventually(lambda: _state_is(failing, JobState.FAILED), what="job dead-lettered")
    after = await eventually(lambda: _fresh(call.enqueue(), failing.id), what="key freed")
    assert not after.duplicate


async def test_key_expires_after_its_ttl(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def ping(ctx: Context) -> None:
        pass

    call = ping.with_options(unique=True, unique_ttl=1)
    first = await call.enqueue()
    assert (await call.enqueue()).id == first.id
    await backend.pass_time(1.2)
    later = await call.enqueue()
    assert later.id != first.id
    assert not later.duplicate


async def test_enqueue_many_keeps_one_job_per_key(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def resize(ctx: Context, image: str) -> str:
        return image

    call = resize.with_options(unique=True)
    jobs = await app.enqueue_many(
        [call.prepare("a.png"), call.prepare("b.png"), call.prepare("a.png")]
    )
    assert jobs[2].id == jobs[0].id
    assert jobs[2].duplicate
    assert jobs[1].id != jobs[0].id
    await backend.worker()
    assert [await job.result(timeout=10) for job in jobs] == ["a.png", "b.png", "a.png"]
