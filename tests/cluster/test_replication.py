"""`replicas=` and `placement_tags=`: every stream and bucket aioq creates, on a real cluster."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import nats
import pytest
from nats.js.api import RetentionPolicy

from aioq import Aarq, Context
from aioq.errors import ConfigError, ProvisioningError
from aioq.local_cluster import LocalCluster
from aioq.testing.harness import start_worker
from aioq.wire import JobState

from ..helpers import eventually
from .conftest import _cleanup


def _all_streams(app: Aarq) -> list[str]:
    names = app.names
    return [
        names.jobs_stream,
        names.dead_stream,
        f"KV_{names.results_bucket}",
        f"KV_{names.workers_bucket}",
        f"KV_{names.schedules_bucket}",
        f"KV_{names.limits_bucket}",
    ]


async def _replicas(url: str, stream: str) -> tuple[int, int]:
    """(configured replicas, nodes holding it: the leader plus its followers)."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream)
    finally:
        await nc.close()
    cluster = info.cluster
    held = 1 + len(cluster.replicas or []) if cluster is not None else 1
    return info.config.num_replicas or 1, held


async def _use_everything(app: Aarq) -> None:
    """Touch every stream and bucket: jobs, held jobs, results, heartbeats, limits, ticks."""

    @app.task(queue="r")
    async def ok(ctx: Context) -> int:
        return 1

    app.queue("r", rate_limit=100)
    worker = await start_worker(app, ["r"])
    try:
        job = await ok.enqueue()
        assert await job.result(timeout=20) == 1
        await ok.with_options(delay=30).enqueue()
        broker = await app.connect()
        # The scheduler retries reads; this one waits for the new bucket to answer the same way.
        await eventually(lambda: _read_tick(broker), timeout=10, what="the schedules bucket")
        await app.pause_queue("r", timedelta(seconds=0.2))
    finally:
        await worker.stop()


async def _read_tick(broker: Any) -> bool:
    try:
        await broker.control.last_tick("nothing-yet")
    except Exception:
        return False
    return True


async def test_replicas_apply_to_every_stream_and_bucket(cluster: LocalCluster, capp: Aarq) -> None:
    await _use_everything(capp)
    for stream in _all_streams(capp):
        assert await _replicas(cluster.urls[0], stream) == (3, 3), stream
    consumer = await _consumer_replicas(cluster.urls[0], capp)
    assert consumer == 3


async def _consumer_replicas(url: str, app: Aarq) -> int:
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().consumer_info(app.names.jobs_stream, app.names.consumer("r"))
    finally:
        await nc.close()
    assert info.cluster is not None
    return 1 + len(info.cluster.replicas or [])


async def test_existing_streams_are_scaled_to_the_asked_count(
    cluster: LocalCluster, prefix: str
) -> None:
    single = Aarq(cluster.urls, prefix=prefix)
    await _use_everything(single)
    await single.close()
    assert await _replicas(cluster.urls[0], single.names.jobs_stream) == (1, 1)
    # An app that leaves replicas unset changes nothing.
    again = Aarq(cluster.urls, prefix=prefix)
    await again.connect()
    await again.close()
    assert await _replicas(cluster.urls[0], single.names.jobs_stream) == (1, 1)
    scaled = Aarq(cluster.urls, prefix=prefix, replicas=3)
    try:
        await _use_everything(scaled)
        # The scale-up waits for the new copies, so each stream is at R3 already.
        for stream in _all_streams(scaled):
            assert await _replicas(cluster.urls[0], stream) == (3, 3), stream
    finally:
        await _cleanup(cluster, scaled)


async def test_placement_tags_pin_the_streams(cluster: LocalCluster, prefix: str) -> None:
    app = Aarq(cluster.urls, prefix=prefix, replicas=1, placement_tags=["az:2"])
    try:
        await app.connect()
        leader = cluster.stream_leader(app.names.jobs_stream)
        assert leader is not None
        assert leader.name == "n2"
    finally:
        await _cleanup(cluster, app)


async def test_tags_no_node_carries_are_one_clear_error(cluster: LocalCluster, prefix: str) -> None:
    app = Aarq(cluster.urls, prefix=prefix, replicas=3, placement_tags=["az:9"])
    with pytest.raises(ProvisioningError, match=r"carrying the tags \['az:9'\].*placement_tags"):
        await app.connect()
    await _cleanup(cluster, app)


async def test_more_replicas_than_nodes_is_one_clear_error(
    cluster: LocalCluster, prefix: str
) -> None:
    app = Aarq(cluster.urls, prefix=prefix, replicas=5)
    with pytest.raises(ProvisioningError, match=r"fewer than 5 JetStream servers.*lower replicas"):
        await app.connect()
    await _cleanup(cluster, app)


async def test_replicas_on_a_single_server_is_one_clear_error(nats_url: str, prefix: str) -> None:
    app = Aarq(nats_url, prefix=prefix, replicas=3)
    with pytest.raises(ProvisioningError, match=r"not clustered.*replicas=1.*--cluster 3"):
        await app.connect()
    await app.close()


@pytest.mark.parametrize("bad", [0, 6, -1, 2.5, True, "3"])
def test_replicas_are_validated_where_given(bad: object) -> None:
    with pytest.raises(ConfigError, match="replicas must be an integer from 1 to 5"):
        Aarq(replicas=bad)  # type: ignore[arg-type]


def test_placement_tags_are_validated_where_given() -> None:
    with pytest.raises(ConfigError, match="list of tags"):
        Aarq(placement_tags="az:1")
    with pytest.raises(ConfigError, match="non-empty strings"):
        Aarq(placement_tags=[""])


async def test_an_older_r3_jobs_stream_takes_atomic_batches(
    cluster: LocalCluster, capp: Aarq
) -> None:
    nc = await nats.connect(cluster.urls[0])
    try:
        js = nc.jetstream()
        await js.add_stream(
            name=capp.names.jobs_stream,
            subjects=[capp.names.jobs_wildcard, capp.names.sched_wildcard],
            retention=RetentionPolicy.WORK_QUEUE,
            num_replicas=3,
            duplicate_window=120.0,
        )

        @capp.task(queue="bulk")
        async def item(ctx: Context, n: int) -> None: ...

        jobs = await capp.enqueue_many([item.prepare(n) for n in range(1200)])
        info = await js.stream_info(capp.names.jobs_stream)
        assert info.config.allow_atomic
        assert info.state.messages == 1200
        broker = await capp.connect()
        assert getattr(broker.jobs, "atomic", None) is True
        assert (await jobs[1100].status()).state is JobState.QUEUED
    finally:
        await nc.close()
