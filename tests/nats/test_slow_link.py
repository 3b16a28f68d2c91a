"""A worker on a slow link: it pulls no more jobs than it has free slots, and the lease of a
job counts from its arrival, so no job runs twice for having waited."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NatsClient

from aioq import Aarq, Context

from ..conftest import WorkerFactory
from ..faults.proxy import Proxy
from ..helpers import eventually

# Bytes per second from the server to the worker: a 200 KB job takes 50 ms to arrive, far
# longer than the pause after which a fetch hands over what came so far.
RATE = 4_000_000
PAD = "p" * 200_000


@pytest.fixture
async def slow(nats_server_port: int) -> AsyncIterator[Proxy]:
    proxy = Proxy(nats_server_port)
    await proxy.start()
    proxy.rate = RATE
    yield proxy
    await proxy.close()


@pytest.fixture
def nats_server_port(nats_url: str) -> int:
    return int(nats_url.rsplit(":", 1)[1])


@pytest.fixture
async def remote(slow: Proxy, prefix: str) -> AsyncIterator[Aarq]:
    """An app on the test's prefix that reaches the server over the slow link."""
    application = Aarq(slow.url, prefix=prefix, ack_wait=3.0)
    yield application
    await application.close()


async def test_a_source_holds_no_more_jobs_than_it_asked_for(
    remote: Aarq, app: Aarq, nc: NatsClient
) -> None:
    @app.task
    async def big(ctx: Context, pad: str) -> None:
        """Never runs here."""

    for _ in range(30):
        await big.enqueue(PAD)
    broker = await remote.connect()
    source = await broker.jobs.open_source("default", remote.queue("default"))
    slots, got = 10, []
    while len(got) < slots:  # as a worker does: ask again for what did not come yet
        got += await source.fetch_now(slots - len(got))
    info = await nc.jetstream().consumer_info(app.names.jobs_stream, app.names.consumer("default"))
    assert info.num_ack_pending == slots
    await source.close()


async def test_jobs_that_come_slowly_run_once(remote: Aarq, start_worker: WorkerFactory) -> None:
    runs: Counter[str] = Counter()

    @remote.task
    async def big(ctx: Context, pad: str) -> None:
        runs[ctx.job_id] += 1
        await asyncio.sleep(1.0)

    ids = {(await big.enqueue(PAD)).id for _ in range(40)}
    await start_worker(remote, concurrency=10, scheduler=False)
    await eventually(lambda: set(runs) == ids, timeout=60)

    async def settled() -> bool:  # a job delivered twice is in flight until it ran again
        [queue] = [q for q in await remote.queues() if q.name == "default"]
        return not queue.pending and not queue.in_flight

    await eventually(settled, timeout=30)
    assert [job for job, n in runs.items() if n > 1] == []
