"""Contract: limits the server holds for every worker of a queue."""

from __future__ import annotations

import asyncio

import pytest

from aioq import Aarq, Context
from aioq.errors import ConfigError

from .conftest import Backend


async def test_max_running_caps_a_queue_over_all_its_workers(backend: Backend) -> None:
    running = 0
    peak = 0

    async def work(ctx: Context, n: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(0.02)  # the job's work: long enough for jobs to overlap
        finally:
            running -= 1
        return n

    apps: list[Aarq] = [backend.app, backend.other_app()]
    for app in apps:
        app.queue("capped", max_running=3)
        app.task(name="work", queue="capped")(work)
    for app in apps:  # two workers, each allowed 10 at once, on their own connections
        await backend.worker(["capped"], app=app, concurrency=10)
    jobs = [await apps[0].get_task("work").enqueue(n) for n in range(40)]
    assert [await job.result(timeout=20) for job in jobs] == list(range(40))
    assert 1 <= peak <= 3


def test_max_running_is_checked(backend: Backend) -> None:
    app = backend.app
    assert app.queue("capped", max_running=4).max_ack_pending == 4
    with pytest.raises(ConfigError, match="max_running must be a whole number >= 1"):
        app.queue("capped", max_running=0)
    with pytest.raises(ConfigError, match="give one of them, not both"):
        app.queue("capped", max_running=2, max_ack_pending=5)
