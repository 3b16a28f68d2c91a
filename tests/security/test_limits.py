"""Limits against abuse: job size, result size and a per-queue cap, each a clear error."""

from __future__ import annotations

import pytest

from aioq import Aarq, Context, JobFailedError, QueueFullError
from aioq.errors import ConfigError, PartialEnqueueError, PayloadTooLargeError
from aioq.testing.harness import start_worker

from .conftest import ServerFactory


async def test_a_full_queue_refuses_new_jobs_and_keeps_the_old(nats_url: str, prefix: str) -> None:
    app = Aarq(nats_url, prefix=prefix, max_queued=3)

    @app.task(queue="mail")
    async def send(ctx: Context, n: int) -> int:
        return n

    @app.task(queue="other")
    async def other(ctx: Context) -> None:
        return None

    try:
        jobs = [await send.enqueue(n) for n in range(3)]
        with pytest.raises(QueueFullError, match="queue 'mail' is full"):
            await send.enqueue(3)
        with pytest.raises(PartialEnqueueError) as partial:
            await app.enqueue_many([send.prepare(4), other.prepare()])
        assert len(partial.value.enqueued) == 1  # the other queue has room
        assert isinstance(partial.value.failed[0][1], QueueFullError)
        # Delayed jobs wait apart and do not count.
        await send.with_options(delay=60).enqueue(5)
        worker = await start_worker(app, ["mail"])
        try:
            assert [await j.result(timeout=10) for j in jobs] == [0, 1, 2]
            await send.enqueue(6)  # room again
        finally:
            await worker.stop()
    finally:
        await app.close()


async def test_the_cap_is_set_changed_and_removed(nats_url: str, prefix: str) -> None:
    for cap, expected in ((5, 5), (None, 5), (-1, -1)):
        app = Aarq(nats_url, prefix=prefix, max_queued=cap)
        await app.connect()
        broker = app._connections.current()
        info = await broker.js.stream_info(app.names.jobs_stream)  # type: ignore[union-attr]
        assert info.config.max_msgs_per_subject == expected
        await app.close()
    with pytest.raises(ConfigError, match="max_queued"):
        Aarq(max_queued=0)


async def test_job_size_and_result_size(configured_server: ServerFactory) -> None:
    server = configured_server("max_payload: 64KB")
    app = Aarq(server.url, prefix="size")

    @app.task(retries=3)
    async def echo(ctx: Context, data: str) -> str:
        return data * 2

    try:
        with pytest.raises(PayloadTooLargeError, match="above the server's max_payload of 65536"):
            await echo.enqueue("x" * 70_000)
        job = await echo.enqueue("y" * 40_000)  # fits; its result (80 kB) does not
        worker = await start_worker(app, ["default"])
        try:
            with pytest.raises(JobFailedError) as failed:
                await job.result(timeout=10)
        finally:
            await worker.stop()
        assert "result is 80002 bytes" in str(failed.value)
        record = await job.status()
        assert record.attempts == 1  # not retried: it would only do the work again
        assert await app.dead.counts() == {"default": 1}
    finally:
        await app.close()
