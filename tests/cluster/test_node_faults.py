"""Node faults under load on the session cluster: leader and follower kills, lost quorum.

Each test SIGKILLs real nats-server nodes while in-process workers run and a producer
enqueues (retrying the same job id on `EnqueueError`), then checks that every acknowledged
job ran, and that duplicates stay within the jobs in flight at the kill.

CI kills the stream leader once. The longer run kills it again after each recovery:

    AIOQ_CLUSTER_KILLS=10 .venv/bin/python -m pytest -q -s tests/cluster/test_node_faults.py
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from aioq import Aarq
from aioq.errors import EnqueueError
from aioq.local_cluster import LocalCluster
from aioq.testing.harness import RunningWorker, start_worker

from ..helpers import eventually
from .chaos import QUEUE, Ledger, build_app, connected_node, drained, leaders, produce

CONCURRENCY = 10
# Leader kills of the leader test (AIOQ_CLUSTER_KILLS; 1 in CI).
KILLS = int(os.environ.get("AIOQ_CLUSTER_KILLS", "1"))


async def _workers(apps: list[Aarq]) -> list[RunningWorker]:
    return [await start_worker(app, [QUEUE], concurrency=CONCURRENCY) for app in apps]


async def _stop(workers: list[RunningWorker], apps: list[Aarq]) -> None:
    for worker in workers:
        await worker.stop()
    for app in apps:
        await app.close()


def _rotated(urls: list[str], by: int) -> list[str]:
    return urls[by:] + urls[:by]


async def test_stream_leader_sigkill_loses_no_acknowledged_job(
    live_cluster: LocalCluster, prefix: str
) -> None:
    ledger = Ledger()
    urls = live_cluster.urls
    producer = build_app(urls, prefix, ledger)
    apps = [build_app(_rotated(urls, i), prefix, ledger) for i in range(2)]
    await producer.connect()
    workers = await _workers(apps)
    killed = []
    try:
        producing = asyncio.create_task(produce(producer, ledger, 300 * KILLS, rate=100))
        for kill in range(KILLS):
            await eventually(
                lambda k=kill: len(ledger.runs) >= 50 + 300 * k, timeout=60, what="jobs running"
            )
            if kill:  # the last victim is back and caught up before the next kill
                await asyncio.to_thread(killed[-1].start)
                await asyncio.to_thread(live_cluster.wait_ready)
            stream_leader, _ = await leaders(live_cluster, producer)
            stream_leader.kill()
            killed.append(stream_leader)
        await producing
        left = await drained(ledger, 60)
    finally:
        await _stop(workers, [*apps, producer])
    print(f"\nstream leader SIGKILLed {KILLS}x ({[n.name for n in killed]}): {ledger.summary()}")
    assert not left, f"acknowledged jobs never ran: {sorted(left)[:5]}"
    assert ledger.duplicates <= CONCURRENCY * len(workers) * KILLS


async def test_a_worker_whose_node_dies_goes_on_through_another(
    live_cluster: LocalCluster, prefix: str
) -> None:
    ledger = Ledger()
    app = build_app(live_cluster.urls, prefix, ledger)
    producer = build_app(live_cluster.urls, prefix, ledger)
    [worker] = await _workers([app])
    try:
        node = await eventually(lambda: connected_node(live_cluster, app), what="a connection")
        await produce(producer, ledger, 20, rate=200)
        await eventually(lambda: not ledger.lost, timeout=20, what="the first jobs")
        node.kill()
        moved = await eventually(
            lambda: _other_node(live_cluster, app, node.name), timeout=20, what="a reconnect"
        )
        await produce(producer, ledger, 50, rate=200)
        left = await drained(ledger, 45)
    finally:
        await _stop([worker], [app, producer])
    print(f"\nworker's node {node.name} SIGKILLed, it went on through {moved}: {ledger.summary()}")
    assert not left
    assert worker.stats.failed == 0


async def _other_node(cluster: LocalCluster, app: Aarq, dead: str) -> str | None:
    node = await connected_node(cluster, app)
    return node.name if node is not None and node.name != dead and node.running else None


async def test_follower_kill_and_return_do_not_pause_the_queue(
    live_cluster: LocalCluster, prefix: str
) -> None:
    ledger = Ledger()
    probe = build_app(live_cluster.urls, prefix, ledger)
    await _stop(await _workers([probe]), [])  # creates the queue's consumer
    # Only the queue's leaders serve it; everyone connects to the stream leader.
    stream_leader, consumer_leader = await leaders(live_cluster, probe)
    await probe.close()
    follower = next(n for n in live_cluster.nodes if n not in (stream_leader, consumer_leader))
    producer = build_app([stream_leader.url], prefix, ledger)
    app = build_app([stream_leader.url], prefix, ledger)
    [worker] = await _workers([app])
    try:
        producing = asyncio.create_task(produce(producer, ledger, 200, rate=100))
        await eventually(lambda: len(ledger.runs) >= 30, timeout=20, what="jobs running")
        follower.kill()
        await eventually(lambda: len(ledger.runs) >= 100, timeout=20, what="jobs without it")
        await asyncio.to_thread(follower.start)
        await producing
        left = await drained(ledger, 30)
    finally:
        await _stop([worker], [app, producer])
    longest = max(ledger.gaps, default=0.0)
    print(
        f"\nfollower {follower.name} killed and restarted: {ledger.summary()}, "
        f"longest pause between runs {longest:.2f} s"
    )
    assert not left
    assert not ledger.failures, ledger.failures[:3]
    assert ledger.duplicates == 0


async def test_lost_quorum_fails_enqueue_fast_and_workers_resume(
    live_cluster: LocalCluster, prefix: str
) -> None:
    ledger = Ledger()
    producer = build_app(live_cluster.urls, prefix, ledger)
    app = build_app(live_cluster.urls, prefix, ledger)
    [worker] = await _workers([app])
    try:
        # 40 jobs of 0.3 s on 10 slots: most are queued or running when the quorum goes.
        await produce(producer, ledger, 40, rate=500, pause=0.3)
        survivor = await eventually(lambda: connected_node(live_cluster, producer))
        down = [n for n in live_cluster.nodes if n is not survivor]
        for node in down:
            node.kill()
        started = time.monotonic()
        with pytest.raises(EnqueueError, match="quorum") as failed:
            await producer.get_task("work").with_options(job_id=f"q-{uuid.uuid4().hex}").enqueue(0)
        took = time.monotonic() - started
        for node in down:
            await asyncio.to_thread(node.start)
        # Enqueued as soon as the quorum is back, and run by the same worker.
        await produce(producer, ledger, 30, rate=500)
        left = await drained(ledger, 60)
    finally:
        await _stop([worker], [app, producer])
    print(
        f"\nquorum lost: enqueue failed after {took:.2f} s with: {failed.value}\n"
        f"after the restart: {ledger.summary()}"
    )
    assert took < 10
    assert not left
    assert ledger.duplicates <= CONCURRENCY
