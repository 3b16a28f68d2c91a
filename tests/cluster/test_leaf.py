"""An edge worker: connected to a leaf node only, it runs jobs from the cluster's queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aioq import Aarq, Context
from aioq.local_cluster import LocalCluster, leaf_linked
from aioq.testing.harness import start_worker

from ..helpers import eventually
from .conftest import DOMAIN, _cleanup


def _app(
    servers: list[str], prefix: str, ran_at: list[str], where: str, domain: str | None = None
) -> Aarq:
    app = Aarq(servers, prefix=prefix, replicas=3, jetstream_domain=domain)

    @app.task(queue="edge", name="measure")
    async def measure(ctx: Context, n: int) -> str:
        ran_at.append(where)
        return f"{n} done at {where}"

    return app


async def test_a_worker_on_a_leaf_node_runs_the_clusters_jobs(
    cluster: LocalCluster, prefix: str, tmp_path: Path
) -> None:
    leaf = cluster.leaf(tmp_path / "leaf")
    await asyncio.to_thread(leaf.start)
    ran_at: list[str] = []
    central = _app(cluster.urls, prefix, ran_at, "cluster")
    # JetStream requests cross a leaf link only addressed to a domain (nats-server 2.7+).
    edge = _app([leaf.url], prefix, ran_at, "edge", DOMAIN)
    try:
        # The leaf links a moment after it starts; the edge app creates nothing there.
        await eventually(lambda: leaf_linked(leaf), timeout=20, what="the leaf link")
        worker = await start_worker(edge, ["edge"], concurrency=4)
        jobs = [await central.get_task("measure").enqueue(n) for n in range(20)]
        results = [await job.result(timeout=20) for job in jobs]
        await worker.stop()
    finally:
        await _cleanup(cluster, edge)
        await central.close()
        await asyncio.to_thread(leaf.stop)
    assert results == [f"{n} done at edge" for n in range(20)]
    assert set(ran_at) == {"edge"}
