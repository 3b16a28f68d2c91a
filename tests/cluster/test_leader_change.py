"""Everything besides plain jobs keeps working when the node leading the streams is killed.

Heartbeats, results, delayed jobs, repeatables, rate limits and pauses, checked after a
SIGKILL of the node leading the jobs stream; no warning is repeated in a flood meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from datetime import timedelta

import pytest

from aioq import Aarq, Context
from aioq.errors import AioqError, EnqueueError
from aioq.local_cluster import LocalCluster
from aioq.testing.harness import start_worker

from ..helpers import eventually
from .chaos import QUEUE, Ledger, build_app, enqueue, leaders


async def _enqueue_retrying(call: object, *args: object) -> object:
    while True:
        try:
            return await call.enqueue(*args)  # type: ignore[attr-defined]
        except EnqueueError:
            await asyncio.sleep(0.1)


def _floods(records: list[logging.LogRecord]) -> list[str]:
    """Warning messages logged more than twice within one second (ids masked)."""
    seen: Counter[tuple[int, str]] = Counter()
    for r in records:
        if r.levelno >= logging.WARNING and not r.getMessage().startswith("job "):
            seen[(int(r.created), r.name + str(r.msg))] += 1
    return sorted({message for (_, message), n in seen.items() if n > 2})


async def test_services_keep_working_across_a_leader_change(
    live_cluster: LocalCluster, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ledger = Ledger()
    app = build_app(live_cluster.urls, prefix, ledger)
    ticks: list[float] = []

    @app.task(queue=QUEUE, name="tick")
    async def tick(ctx: Context) -> None:
        ticks.append(time.monotonic())

    app.add_repeatable(tick, every=1)
    app.queue(QUEUE, rate_limit=200)
    worker = await start_worker(app, [QUEUE], concurrency=10)
    try:
        work = app.get_task("work")
        delayed = await work.with_options(delay=3).enqueue(0.01)
        before = await work.enqueue(0.01)
        assert await before.result(timeout=20) is None
        await eventually(lambda: len(ticks) >= 1, timeout=20, what="a first tick")
        stream_leader, _ = await leaders(live_cluster, app)
        stream_leader.kill()
        killed = time.monotonic()
        during = [await _enqueue_retrying(work, 0.01) for _ in range(5)]
        recovered = time.monotonic()
        # Results: of jobs enqueued across the election and the delayed one due inside it.
        for job in [*during, delayed]:
            assert await job.result(timeout=30) is None  # type: ignore[attr-defined]
        # Repeatables fire again; heartbeats are stored again.
        await eventually(lambda: any(t > recovered for t in ticks), timeout=20, what="a tick")
        await eventually(lambda: _alive(app, worker.worker.id), timeout=20, what="heartbeat")
        # Pauses and rate limits still go through their buckets and the consumer.
        await app.pause_queue(QUEUE, timedelta(seconds=30))
        assert await app.queue_paused_until(QUEUE) is not None
        await app.resume_queue(QUEUE)
        after = [await enqueue(app, ledger, f"after-{i}") for i in range(20)]
        assert len(after) == 20
        await eventually(lambda: not ledger.lost, timeout=30, what="jobs after the change")
    finally:
        await worker.stop()
        await app.close()
    print(
        f"\nleader {stream_leader.name} killed: enqueue blocked {recovered - killed:.2f} s, "
        f"{len(ticks)} ticks"
    )
    floods = _floods(caplog.records)
    assert not floods, floods


async def _alive(app: Aarq, worker_id: str) -> bool:
    try:
        workers = await app.workers()
    except (TimeoutError, AioqError):
        return False  # the heartbeat bucket's own stream may still be electing its leader
    return any(w.info.id == worker_id and w.age < 2 for w in workers)
