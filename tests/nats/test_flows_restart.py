"""Flows and unique keys are held by the server: they survive its restart and the producer's."""

from __future__ import annotations

import asyncio

from aioq import Aarq, Context, JobState
from aioq.embedded import EmbeddedNats
from aioq.testing import start_worker


def _app(url: str) -> Aarq:
    app = Aarq(url, prefix="flowrestart", ack_wait=2.0)

    @app.task
    async def add(ctx: Context, a: int, b: int) -> int:
        return a + b

    @app.task
    async def double(ctx: Context, n: int) -> int:
        return 2 * n

    return app


async def test_a_waiting_chain_survives_a_server_restart(own_server: EmbeddedNats) -> None:
    server = own_server
    producer = _app(server.url)
    add, double = producer.get_task("add"), producer.get_task("double")
    flow = await producer.chain(add.s(1, 2), double.s(), double.s())
    unique = await add.with_options(unique_key="once").enqueue(5, 5)
    await producer.close()
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)

    app = _app(server.url)
    last = await app.job(flow.id)
    assert (await last.status()).state == JobState.WAITING
    assert (await app.get_task("add").with_options(unique_key="once").enqueue(1, 1)).duplicate
    worker = await start_worker(app, ["default"], scan_interval=0.2)
    try:
        assert await last.result(timeout=20) == 12
        assert await (await app.job(unique.id)).result(timeout=10) == 10
    finally:
        await worker.stop()
        await app.close()
