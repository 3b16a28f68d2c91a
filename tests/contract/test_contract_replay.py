"""Contract: the history of succeeded jobs, and replaying a window of it."""

from __future__ import annotations

import pytest

from aioq import Context
from aioq.errors import ConfigError

from ..helpers import eventually
from .conftest import Backend


async def test_succeeded_jobs_are_kept_and_replayed_in_a_window(backend: Backend) -> None:
    app = backend.app
    app.queue("kept", history=3600)
    ran: list[tuple[str, int]] = []

    @app.task(queue="kept")
    async def double(ctx: Context, n: int) -> int:
        ran.append((ctx.job_id, n))
        return 2 * n

    @app.task()
    async def plain(ctx: Context) -> None:
        return None

    await backend.worker(["kept", "default"])
    for n in (1, 2, 3):
        assert await (await double.enqueue(n)).result(timeout=10) == 2 * n
        await backend.pass_time(0.01)  # distinct times, also on a fake clock
    await (await plain.enqueue()).result(timeout=10)

    kept = await app.history.list("kept")
    assert [k.message.args for k in kept] == [[1], [2], [3]]
    assert [k.job_id for k in kept] == [job_id for job_id, _ in ran]
    assert await app.history.list("default") == []  # no history: nothing is kept
    assert await app.history.list("kept", task="plain") == []

    window = await app.history.replay("kept", since=kept[1].at, task="double")
    assert sorted([await job.result(timeout=10) for job in window]) == [4, 6]
    assert {job.id for job in window}.isdisjoint(k.job_id for k in kept)  # new ids
    assert [n for _, n in ran] == [1, 2, 3, 2, 3]
    assert await app.history.replay("kept", until=kept[0].at) == []
    # The replayed jobs succeeded too, so they are kept in their turn.
    assert len(await app.history.list("kept")) == 5


async def test_the_history_keeps_jobs_for_its_retention_only(backend: Backend) -> None:
    app = backend.app
    app.queue("brief", history=3)

    @app.task(queue="brief")
    async def noop(ctx: Context) -> None:
        return None

    await backend.worker(["brief"])
    await (await noop.enqueue()).result(timeout=10)
    assert len(await app.history.list("brief")) == 1
    await backend.pass_time(3)

    async def gone() -> bool:
        return await app.history.list("brief") == []

    await eventually(gone, timeout=10)


def test_a_history_needs_a_positive_retention(backend: Backend) -> None:
    with pytest.raises(ConfigError, match="history must be > 0 seconds"):
        backend.app.queue("kept", history=0)
