from __future__ import annotations

import pytest

from aioq import Aarq, BrokerError, Context

from ..conftest import WorkerFactory
from ..helpers import eventually


async def test_job_runs_on_worker(app: Aarq, start_worker: WorkerFactory) -> None:
    seen: list[tuple[str, int, int]] = []

    @app.task
    async def add(ctx: Context, a: int, b: int) -> int:
        seen.append((ctx.job_id, ctx.attempt, a + b))
        return a + b

    job = await add.enqueue(1, 2)
    await start_worker(queues=["default"], concurrency=5)
    await eventually(lambda: seen)
    assert seen == [(job.id, 1, 3)]


async def test_broker_concepts_exist_while_connected(app: Aarq) -> None:
    broker = await app.connect()
    records = broker.records
    assert broker.records is records  # made once per connection, read as attributes
    await broker.close()
    with pytest.raises(BrokerError, match="not connected"):
        _ = broker.records
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = broker.no_such_thing  # type: ignore[attr-defined]
    assert not hasattr(broker, "no_such_thing")
    await broker.connect()
    assert broker.records is not records  # a new connection, new concepts on it
