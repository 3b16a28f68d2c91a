"""Contract: chains and groups, built on dependencies held by the broker."""

from __future__ import annotations

import pytest

from aioq import Context, JobFailedError, JobState

from .conftest import Backend


async def test_chain_of_three_passes_each_result_on(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def add(ctx: Context, a: int, b: int) -> int:
        return a + b

    @app.task
    async def double(ctx: Context, n: int) -> int:
        return 2 * n

    @app.task
    async def describe(ctx: Context, n: int, unit: str) -> str:
        return f"{n} {unit}"

    await backend.worker(scan_interval=0.2)
    flow = await app.chain(add.s(1, 2), double.s(), describe.s(unit="apples"))
    assert await flow.result(timeout=20) == "6 apples"
    assert flow.id == flow.jobs[-1].id
    records = await flow.status()
    assert [r.state for r in records] == [JobState.SUCCEEDED] * 3
    assert records[1].depends_on == [flow.jobs[0].id]


async def test_group_of_100_then_a_callback(backend: Backend) -> None:
    app = backend.app

    @app.task
    async def square(ctx: Context, n: int) -> int:
        return n * n

    @app.task
    async def total(ctx: Context, values: list[int], offset: int) -> int:
        return sum(values) + offset

    await backend.worker(scan_interval=0.2, concurrency=20)
    flow = await app.group(*(square.s(n) for n in range(100)), callback=total.s(offset=1))
    assert await flow.result(timeout=30) == sum(n * n for n in range(100)) + 1
    assert flow.callback is not None
    assert len(flow.jobs) == 100
    plain = await app.group(square.s(2), square.s(3))
    assert await plain.result(timeout=10) == [4, 9]


async def test_a_failing_member_fails_the_rest_of_the_chain(backend: Backend) -> None:
    app = backend.app

    @app.task(retries=0)
    async def parse(ctx: Context, text: str) -> int:
        return int(text)

    @app.task
    async def inc(ctx: Context, n: int) -> int:
        return n + 1

    await backend.worker(scan_interval=0.2)
    flow = await app.chain(parse.s("x"), inc.s(), inc.s())
    with pytest.raises(JobFailedError, match="dependency"):
        await flow.result(timeout=20)
    states = [r.state for r in await flow.status()]
    assert states == [JobState.FAILED] * 3
