"""Shared fixtures: one real nats-server per test session, an isolated app per test."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient

from aioq import Aarq, Worker
from aioq.embedded import EmbeddedNats
from aioq.testing.harness import TEST_WORKER_OPTIONS, RunningWorker
from aioq.testing.harness import start_worker as start_running_worker

from .procs import Procs, cli_env


@pytest.fixture(scope="session")
def nats_server() -> Iterator[EmbeddedNats]:
    """A real JetStream server on a free loopback port with a temporary store."""
    server = EmbeddedNats()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A nats-server of the test's own, for a test that kills, freezes or restarts it."""
    server = EmbeddedNats(store_dir=tmp_path / "store")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.url


@pytest.fixture
def prefix() -> str:
    """A prefix of its own per test, so tests never see each other's jobs."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def app(nats_url: str, prefix: str) -> AsyncIterator[Aarq]:
    """An app on the session server with a short lease, so redeliveries come fast."""
    application = Aarq(nats_url, prefix=prefix, ack_wait=2.0)
    yield application
    await application.close()
    await _delete_prefix(nats_url, application)


async def _delete_prefix(url: str, application: Aarq) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    names = application.names
    streams = [names.jobs_stream, names.dead_stream, names.history_stream]
    streams += [f"KV_{names.workers_bucket}", f"KV_{names.results_bucket}"]
    streams += [f"KV_{names.schedules_bucket}", f"KV_{names.limits_bucket}"]
    for stream in streams:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
    await nc.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    """A plain nats-py client, for checking what aioq stored."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


WorkerFactory = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def start_worker(app: Aarq) -> AsyncIterator[WorkerFactory]:
    """Start in-process workers (stopped at teardown): ``await start_worker(queues=[...])``.

    Each is started by `aioq.testing.start_worker` with `TEST_WORKER_OPTIONS`; it pulls from
    the queues given, or ``default``.
    """
    running: list[RunningWorker] = []

    async def start(application: Aarq | None = None, **options: Any) -> Worker:
        queues = options.pop("queues", TEST_WORKER_OPTIONS.queues)
        started = await start_running_worker(application or app, queues, **options)
        running.append(started)
        return started.worker

    yield start
    for started in running:
        started.worker.stop()
    for started in running:
        try:
            async with asyncio.timeout(15):
                await started.task
        except TimeoutError:
            started.worker.stop()
            await started.task


@pytest.fixture
def events(tmp_path: Path) -> Path:
    """File where the process-test apps (tests/apps) record job starts and finishes."""
    return tmp_path / "events.jsonl"


@pytest.fixture
def procs(client: Aarq, tmp_path: Path, prefix: str, events: Path) -> Iterator[Procs]:
    """CLI processes on the test prefix (a module provides `client`); reaped at teardown."""
    running = Procs(tmp_path, cli_env(AIOQ_TEST_PREFIX=prefix, AIOQ_TEST_EVENTS=str(events)))
    try:
        yield running
    finally:
        running.reap_all()
