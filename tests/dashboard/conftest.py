"""A dashboard process and a worker process per test module, on a prefix of the module's own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
import nats
import pytest
import pytest_asyncio

from aioq import Aarq
from aioq.embedded import EmbeddedNats
from aioq.naming import Names

from ..procs import Proc, Procs, cli_env
from .dash_app import QUEUE, build

APP = "tests.dashboard.dash_app:app"
#: Short heartbeats, so a killed worker's key expires within a second.
HEARTBEAT = "0.3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Stack:
    """The module's processes: a dashboard (and more on demand) and workers."""

    def __init__(self, url: str, prefix: str, workdir: Path) -> None:
        self.url = url
        self.prefix = prefix
        self.procs = Procs(workdir, cli_env(AIOQ_TEST_PREFIX=prefix))
        self.base = ""
        self.dashboard: Proc | None = None

    def start_dashboard(self, *options: str) -> tuple[Proc, str]:
        port = free_port()
        proc = self.procs.start(
            "dashboard",
            APP,
            "-s",
            self.url,
            "--port",
            str(port),
            "--log-level",
            "warning",
            *options,
        )
        base = f"http://127.0.0.1:{port}"
        wait_http(base, proc)
        return proc, base

    def start_worker(self) -> Proc:
        proc = self.procs.start(
            "worker",
            APP,
            "-s",
            self.url,
            "-q",
            QUEUE,
            "--heartbeat-interval",
            HEARTBEAT,
            "--shutdown-grace",
            "2",
        )
        return proc


def wait_http(base: str, proc: Proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.returncode is not None:
            raise AssertionError(f"the dashboard exited with {proc.returncode}:\n{proc.log()}")
        try:
            httpx2.get(
                base + "/api/csrf", timeout=2.0, headers={"authorization": "Basic Zm9vOmJhcg=="}
            )
            return
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not answer:\n{proc.log()}") from None
            time.sleep(0.1)


@pytest.fixture(scope="module")
def stack(nats_server: EmbeddedNats, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prefix = f"d{uuid.uuid4().hex[:10]}"
    running = Stack(nats_server.url, prefix, tmp_path_factory.mktemp("dash"))
    try:
        running.dashboard, running.base = running.start_dashboard()
        yield running
    finally:
        running.procs.reap_all()
        asyncio.run(delete_streams(nats_server.url, prefix))


@pytest_asyncio.fixture(loop_scope="module")
async def client(stack: Stack) -> AsyncIterator[Aarq]:
    """The producer side: the module's app on the module's prefix."""
    application = build(stack.prefix, servers=stack.url)
    yield application
    await application.close()


@pytest_asyncio.fixture(loop_scope="module")
async def http(stack: Stack) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(base_url=stack.base, timeout=10.0) as session:
        yield session


async def delete_streams(url: str, prefix: str) -> None:
    names = Names(prefix)
    nc = await nats.connect(url)
    js = nc.jetstream()
    buckets = [names.workers_bucket, names.results_bucket, names.schedules_bucket]
    for stream in [names.jobs_stream, names.dead_stream, *(f"KV_{b}" for b in buckets)]:
        with contextlib.suppress(Exception):
            await js.delete_stream(stream)
    await nc.close()


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Proc:
    """A worker process serving the module's queue, listed alive by the dashboard."""
    proc = stack.start_worker()
    deadline = time.monotonic() + 20
    while True:
        listed = httpx2.get(stack.base + "/api/workers", timeout=5).json()
        if any(w["pid"] == proc.pid and w["status"] == "alive" for w in listed):
            return proc
        assert proc.returncode is None, proc.log()
        assert time.monotonic() < deadline, f"worker not listed: {listed}\n{proc.log()}"
        time.sleep(0.1)
