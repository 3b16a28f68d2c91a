"""The worker's fetch loop when its queue's consumer disappears."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from aioq import Aarq, Context

from ..conftest import WorkerFactory
from ..helpers import eventually


async def test_a_vanishing_queue_consumer_is_retried_with_backoff_and_logged_once(
    app: Aarq,
    nc: NatsClient,
    start_worker: WorkerFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[int] = []

    @app.task
    async def work(ctx: Context, n: int) -> None:
        done.append(n)

    caplog.set_level(logging.WARNING, logger="aioq.worker")
    await start_worker(queues=["default"], scheduler=False)
    js = nc.jetstream()
    deleted = 0
    end = time.monotonic() + 1.5
    while time.monotonic() < end:  # the consumer disappears again and again for 1.5 s
        try:
            await js.delete_consumer(app.names.jobs_stream, app.names.consumer("default"))
            deleted += 1
        except NotFoundError:
            pass
        await asyncio.sleep(0.01)
    # Back to normal: jobs run again.
    await work.enqueue(1)
    await eventually(lambda: done == [1])
    lines = [r.getMessage() for r in caplog.records if r.name == "aioq.worker"]
    print(f"consumer deleted {deleted} times; worker warnings: {lines}")
    assert deleted >= 2
    # One line when the outage starts, one when it ends; each a single line.
    assert len(lines) == 2, lines
    assert "gone" in lines[0]
    assert "again" in lines[1]
    assert not any("\n" in line for line in lines)
