"""Contract: group limits (per tenant, per API key) held over every worker of the app."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter

import nats
import pytest

from aioq import Aarq, Context, JobRecord, JobState
from aioq.errors import ConfigError, JobNotFoundError
from aioq.inspection import GroupUse, group_usage

from ..helpers import eventually
from .conftest import Backend
from .test_contract_scheduling import SLACK, most_in_window


async def test_a_flooded_group_does_not_starve_the_others(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "aioq.worker")
    app = backend.app
    done: list[str] = []

    @app.task(retries=0)
    async def work(ctx: Context, tenant: str) -> None:
        await asyncio.sleep(0.02)  # real work: the flooded group's jobs take a while
        done.append(tenant)

    app.group_limit("flood", max_running=1, recheck=0.05)
    flood = [await work.with_options(group="flood").enqueue("flood") for _ in range(30)]
    others = [await work.with_options(group="calm").enqueue("calm") for _ in range(10)]
    await backend.worker(concurrency=4)
    for job in others:
        await job.result(timeout=20)
    assert Counter(done)["flood"] < 30  # the calm group did not wait for the flood to drain
    for job in flood:
        await job.result(timeout=30)
    # Put back many times, yet each ran on its first and only attempt (retries=0).
    records = [await job.status() for job in flood]
    assert {r.state for r in records} == {JobState.SUCCEEDED}
    assert {r.attempts for r in records} == {1}
    assert max(r.deferred for r in records) > 0
    # One line when the group went over its limits, none per put-back.
    told = [r for r in caplog.records if "flood" in r.getMessage() and "put back" in r.getMessage()]
    assert len(told) == 1, [r.getMessage() for r in told]


async def test_max_running_per_group_holds_over_all_workers(backend: Backend) -> None:
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()

    async def work(ctx: Context, tenant: str) -> str:
        running[tenant] += 1
        peak[tenant] = max(peak[tenant], running[tenant])
        try:
            await asyncio.sleep(0.02)  # long enough for jobs to overlap
        finally:
            running[tenant] -= 1
        return tenant

    apps: list[Aarq] = [backend.app, backend.other_app()]
    for app in apps:
        app.task(name="work")(work)
        app.group_limit(max_running=2, recheck=0.05)  # every group
        app.group_limit("big", max_running=4, recheck=0.05)
    for app in apps:  # two workers, each allowed 10 at once, on their own connections
        await backend.worker(app=app, concurrency=10)
    task = apps[0].get_task("work")
    jobs = [
        await task.with_options(group=tenant).enqueue(tenant)
        for _ in range(12)
        for tenant in ("small", "big")
    ]
    assert sorted([await job.result(timeout=30) for job in jobs]) == sorted(["small", "big"] * 12)
    assert 1 <= peak["small"] <= 2
    assert 1 <= peak["big"] <= 4


async def test_a_group_rate_limit_holds_and_leaves_other_groups_alone(backend: Backend) -> None:
    app = backend.app
    starts: dict[str, list[float]] = {"slow": [], "free": []}

    @app.task
    async def hit(ctx: Context, tenant: str) -> None:
        starts[tenant].append(app.clock.time())

    limit, interval, count = 3, 0.5, 9
    app.group_limit("slow", rate_limit=limit, rate_interval=interval)
    await app.enqueue_many(hit.with_options(group="slow").prepare("slow") for _ in range(count))
    await app.enqueue_many(hit.with_options(group="free").prepare("free") for _ in range(count))
    await backend.worker(concurrency=10)
    await backend.worker(concurrency=10)
    await eventually(lambda: len(starts["slow"]) == count, timeout=15)
    assert most_in_window(starts["slow"], interval * SLACK) <= limit
    assert max(starts["slow"]) - min(starts["slow"]) >= 2 * interval * SLACK
    assert len(starts["free"]) == count  # never held back by the other group's limit


async def test_a_task_s_group_and_jobs_of_no_group(backend: Backend) -> None:
    app = backend.app
    ran: list[str] = []

    @app.task(group="paused")
    async def hold(ctx: Context, what: str) -> None:
        ran.append(what)

    app.group_limit("paused", rate_limit=0)
    await hold.enqueue("held")  # the task's group
    other = await hold.with_options(group="open").enqueue("other group")
    await backend.worker()
    await eventually(lambda: ran == ["other group"])
    await other.result(timeout=10)  # its record names the group from the first a worker writes
    assert (await other.status()).group == "open"
    await backend.pass_time(0.3)
    assert ran == ["other group"]


@pytest.mark.nats_only("a foreign client publishes over plain NATS; memory has no wire protocol")
async def test_a_foreign_client_s_job_names_its_group(backend: Backend) -> None:
    app = backend.app
    ran: list[str] = []

    @app.task
    async def greet(ctx: Context, name: str) -> None:
        ran.append(name)

    app.group_limit("closed", rate_limit=0, recheck=0.1)
    await backend.worker()
    assert backend.url is not None
    client = await nats.connect(backend.url)
    try:
        js = client.jetstream()
        for group, name in (("closed", "held"), ("open", "ada")):
            job = {"task": "greet", "args": [name], "id": f"foreign-{name}", "group": group}
            await js.publish(f"{app.prefix}.jobs.default", json.dumps(job).encode())
    finally:
        await client.close()
    await eventually(lambda: ran == ["ada"])

    async def put_back_twice() -> JobRecord | None:
        try:  # a foreign job is on record from its first put-back on
            record = await (await app.job("foreign-held")).status()
        except JobNotFoundError:
            return None
        return record if record.deferred >= 2 else None

    record = await eventually(put_back_twice)
    assert ran == ["ada"]
    assert (record.state, record.attempts) == (JobState.QUEUED, 0)


def test_group_names_and_limits_are_checked(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def noop(ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="invalid group 'a b'"):
        noop.with_options(group="a b")
    with pytest.raises(ConfigError, match="invalid group"):
        app.task(name="other", group=".x")
    with pytest.raises(ConfigError, match="max_running must be a whole number >= 1"):
        app.group_limit("t", max_running=0)
    with pytest.raises(ConfigError, match="rate_limit must be an integer"):
        app.group_limit("t", rate_limit=-1)
    with pytest.raises(ConfigError, match="recheck must be > 0"):
        app.group_limit("t", max_running=1, recheck=0)
    assert app.group_limit("t", max_running=3).max_running == 3


async def test_group_usage_counts_the_places_held_and_the_starts_in_the_window(
    backend: Backend,
) -> None:
    app = backend.app
    gate = asyncio.Event()

    @app.task(retries=0)
    async def hold(ctx: Context) -> None:
        await gate.wait()

    app.group_limit("busy", max_running=3, rate_limit=100, rate_interval=3600)
    jobs = [await hold.with_options(group="busy").enqueue() for _ in range(2)]
    assert await group_usage(app) == []
    await backend.worker(concurrency=4)

    async def holding() -> list[GroupUse]:
        found = await group_usage(app)
        return found if found and found[0].running == 2 else []

    [use] = await eventually(holding)
    assert (use.group, use.started, use.rate_limit, use.rate_interval) == ("busy", 2, 100, 3600)
    gate.set()
    for job in jobs:
        await job.result(timeout=10)

    async def released() -> bool:
        return [u.running for u in await group_usage(app)] == [0]

    await eventually(released)


async def test_a_queued_job_s_status_names_its_group_priority_and_unique_key(
    backend: Backend,
) -> None:
    app = backend.app

    @app.task
    async def send(ctx: Context, to: str) -> None: ...

    job = await send.with_options(group="tenant-1", priority=8, unique_key="k-1").enqueue("a")
    status = await job.status()  # no worker yet: from the job's message
    assert (status.state, status.group, status.priority) == (JobState.QUEUED, "tenant-1", 8)
    assert status.unique_key
    await backend.worker()
    await job.result(timeout=10)
    done = await job.status()
    assert (done.group, done.priority, done.unique_key) == ("tenant-1", 8, status.unique_key)
