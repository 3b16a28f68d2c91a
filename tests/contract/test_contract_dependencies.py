"""Contract: jobs that wait for others (depends_on), held by the broker until they end."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aioq import Context, DeadReason, Job, JobFailedError, JobNotFoundError, JobState

from .conftest import Backend


async def _state(job: Job[Any]) -> JobState:
    return (await job.status()).state


async def test_job_waits_until_its_dependencies_succeed(backend: Backend) -> None:
    app = backend.app
    gate = asyncio.Event()
    order: list[str] = []

    @app.task
    async def step(ctx: Context, name: str) -> str:
        if name == "slow":
            await gate.wait()
        order.append(name)
        return name

    await backend.worker(scan_interval=0.2)
    slow = await step.enqueue("slow")
    done_before = await step.enqueue("fast")
    assert await done_before.result(timeout=10) == "fast"
    after = await step.with_options(depends_on=[slow, done_before.id]).enqueue("after")
    status = await after.status()
    assert status.state == JobState.WAITING
    assert status.depends_on == [slow.id, done_before.id]
    gate.set()
    assert await after.result(timeout=10) == "after"
    assert order == ["fast", "slow", "after"]


async def test_failed_dependency_dead_letters_or_runs_anyway(backend: Backend) -> None:
    app = backend.app

    @app.task(retries=0)
    async def boom(ctx: Context) -> None:
        raise RuntimeError("no")

    @app.task
    async def cleanup(ctx: Context) -> str:
        return "cleaned"

    await backend.worker(scan_interval=0.2)
    failing = await boom.enqueue()
    dead = await cleanup.with_options(depends_on=[failing]).enqueue()
    anyway = await cleanup.with_options(depends_on=[failing], on_dependency_failure="run").enqueue()
    with pytest.raises(JobFailedError, match="dependency"):
        await dead.result(timeout=10)
    assert await anyway.result(timeout=10) == "cleaned"
    entry = await app.dead.get("default", dead.id)
    assert entry.letter.reason == DeadReason.DEPENDENCY_FAILED
    assert entry.letter.error is not None
    assert failing.id in entry.letter.error.message
    # A job waiting on the dead-lettered one fails in turn.
    chained = await cleanup.with_options(depends_on=[dead]).enqueue()
    with pytest.raises(JobFailedError, match="dependency"):
        await chained.result(timeout=10)


async def test_unknown_dependency_is_refused(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def later(ctx: Context) -> None:
        pass

    with pytest.raises(JobNotFoundError, match="depends_on: no job 'nope'"):
        await later.with_options(depends_on=["nope"]).enqueue()


async def test_aborting_a_waiting_job_fails_its_dependents(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def noop(ctx: Context) -> None:
        pass

    first = await noop.enqueue()
    second = await noop.with_options(depends_on=[first]).enqueue()
    third = await noop.with_options(depends_on=[second]).enqueue()
    assert await second.abort()
    assert await _state(second) == JobState.ABORTED
    await backend.worker(scan_interval=0.2)
    await first.result(timeout=10)
    with pytest.raises(JobFailedError, match="aborted"):
        await third.result(timeout=10)


async def test_a_waiting_job_is_found_while_it_is_released(backend: Backend) -> None:
    # Released, a waiting job's record is removed a moment before its message is queued.
    app = backend.app

    @app.task
    async def step(ctx: Context) -> None: ...

    first = await step.enqueue()  # no worker: it stays queued, so `after` waits
    after = await step.with_options(depends_on=[first]).enqueue()
    await (await app.connect()).records.delete(after.id)
    found = await app.job(after.id)
    assert found.queue == after.queue
    status = await found.status()
    assert (status.state, status.depends_on, status.task) == (
        JobState.WAITING,
        [first.id],
        step.name,
    )
