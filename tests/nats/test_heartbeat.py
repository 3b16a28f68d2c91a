"""Worker heartbeats in the ``<prefix>-workers`` KV bucket, read back with a raw nats-py client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

import aioq
from aioq import Aarq, Context
from aioq.testing import start_worker

from ..conftest import WorkerFactory
from ..helpers import eventually

FIELDS = {
    "id",
    "hostname",
    "pid",
    "queues",
    "concurrency",
    "active",
    "processed",
    "failed",
    "started_at",
    "heartbeat_at",
    "version",
}


async def record(kv: KeyValue, worker_id: str) -> dict[str, Any]:
    entry = await kv.get(worker_id)
    assert entry.value is not None
    value = json.loads(entry.value)
    assert isinstance(value, dict)
    return value


async def bucket(nc: NatsClient, app: Aarq, worker: aioq.Worker) -> KeyValue:
    """The workers bucket, once `worker` has written its first heartbeat.

    `start_worker` returns once the worker has begun starting up; its first heartbeat (which
    creates the bucket) follows its startup hooks and consumers.
    """
    js = nc.jetstream()
    found: KeyValue | None = None

    async def written() -> bool:
        nonlocal found
        try:
            kv = await js.key_value(f"{app.prefix}-workers")
            await kv.get(worker.id)
        except (BucketNotFoundError, KeyNotFoundError):
            return False
        found = kv
        return True

    await eventually(written, timeout=10)
    assert found is not None
    return found


async def keys(kv: KeyValue) -> list[str]:
    try:
        return await kv.keys()
    except NoKeysError:
        return []


async def test_heartbeat_record_read_back_with_raw_client(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    release = asyncio.Event()

    @app.task
    async def ok(ctx: Context) -> None:
        pass

    @app.task(retries=0)
    async def bad(ctx: Context) -> None:
        raise RuntimeError("no")

    @app.task(queue="hb")
    async def held(ctx: Context) -> None:
        await release.wait()

    before = time.time()
    worker = await start_worker(queues=["default", "hb"], concurrency=3, heartbeat_interval=0.2)
    js = nc.jetstream()
    kv = await bucket(nc, app, worker)

    first = await record(kv, worker.id)
    assert set(first) >= FIELDS
    assert first["id"] == worker.id
    assert first["hostname"] == socket.gethostname()
    assert first["pid"] == os.getpid()
    assert first["queues"] == ["default", "hb"]
    assert first["concurrency"] == 3
    assert first["active"] == 0
    assert first["processed"] == 0
    assert first["failed"] == 0
    assert first["version"] == aioq.__version__
    assert before - 1 <= first["started_at"] <= first["heartbeat_at"] <= time.time() + 1
    assert first["started_at"] == pytest.approx(worker.started_at)
    assert await keys(kv) == [worker.id]

    # heartbeat_at advances while the worker runs.
    latest: dict[str, Any] = first

    async def beat_after(previous: float) -> bool:
        nonlocal latest
        latest = await record(kv, worker.id)
        return bool(latest["heartbeat_at"] > previous)

    await eventually(lambda: beat_after(first["heartbeat_at"]), timeout=5)
    assert latest["started_at"] == first["started_at"]

    # processed, failed and active follow the jobs.
    await ok.enqueue()
    await ok.enqueue()
    await bad.enqueue()
    await held.enqueue()

    async def counts_reported() -> bool:
        nonlocal latest
        latest = await record(kv, worker.id)
        return (latest["processed"], latest["failed"], latest["active"]) == (2, 1, 1)

    await eventually(counts_reported, timeout=5)
    release.set()

    async def idle_again() -> bool:
        nonlocal latest
        latest = await record(kv, worker.id)
        return (latest["processed"], latest["active"]) == (3, 0)

    await eventually(idle_again, timeout=5)

    # The bucket forgets a silent worker after three intervals.
    info = await js.stream_info(f"KV_{app.prefix}-workers")
    assert info.config.max_age == pytest.approx(0.6)
    assert info.config.max_msgs_per_subject == 1

    # A stopped worker removes its key at once.
    worker.stop()

    async def key_gone() -> bool:
        return worker.id not in await keys(kv)

    await eventually(key_gone, timeout=10)
    with pytest.raises(KeyNotFoundError):
        await kv.get(worker.id)
    with pytest.raises(NoKeysError):
        await kv.keys()


async def test_silent_worker_expires_from_the_bucket(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    worker = await start_worker(heartbeat_interval=0.25)
    kv = await bucket(nc, app, worker)
    # A worker that died without cleaning up: its last record, never refreshed.
    await kv.put("ghost", json.dumps({"id": "ghost"}).encode())
    assert sorted(await keys(kv)) == sorted([worker.id, "ghost"])

    async def ghost_gone() -> bool:
        return await keys(kv) == [worker.id]

    # TTL 0.75 s; the live worker keeps its key by beating every 0.25 s.
    await eventually(ghost_gone, timeout=10)
    await asyncio.sleep(0.8)
    assert await keys(kv) == [worker.id]


async def test_heartbeat_defaults(app: Aarq, start_worker: WorkerFactory, nc: NatsClient) -> None:
    worker = aioq.Worker(app)
    assert worker.heartbeat_interval == 10.0
    assert worker.heartbeat_ttl == 30.0
    started = await start_worker(heartbeat_interval=10.0)
    kv = await bucket(nc, app, started)
    info = await nc.jetstream().stream_info(f"KV_{app.prefix}-workers")
    assert info.config.max_age == pytest.approx(30.0)
    assert info.config.allow_direct
    assert info.config.max_msgs_per_subject == 1
    assert (await record(kv, started.id))["id"] == started.id


async def test_stopped_worker_removes_its_key_at_once(app: Aarq, nc: NatsClient) -> None:
    # A 30 s TTL: the key can only be gone right after the stop if the worker deleted it.
    started = await start_worker(app, ["default"], heartbeat_interval=10.0)
    worker = started.worker
    try:
        kv = await bucket(nc, app, worker)
        assert await keys(kv) == [worker.id]
    finally:
        await started.stop(timeout=15)
    with pytest.raises(KeyNotFoundError):
        await kv.get(worker.id)
    with pytest.raises(NoKeysError):
        await kv.keys()
