"""The `backend` fixture: every contract test runs on a real nats-server and in memory.

On memory the broker's clock is a `FakeClock` that jumps to its next wake-up whenever
something waits on it (``auto_advance``): retry backoffs, delays and rate-limit windows pass
in fake time, so the same test body waits on NATS and hardly at all in memory. Time that a
test itself lets pass goes through `Backend.pass_time`.

A test that only JetStream can run carries ``@pytest.mark.nats_only("why")``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from aioq import Aarq
from aioq.clock import Clock
from aioq.embedded import EmbeddedNats
from aioq.testing import FakeClock, MemoryBroker, RunningWorker, start_worker

from ..conftest import _delete_prefix

BACKENDS = ["nats", "memory"]
# Real seconds a waiting FakeClock lets pass before it jumps to its next wake-up.
AUTO_ADVANCE_S = 0.02
# The app's default lease: short, so that a redelivery comes within a test.
ACK_WAIT_S = 2.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "nats_only(reason): the contract test needs JetStream; skipped in memory"
    )


@dataclass
class Backend:
    """One backend under test: its app(s), its clock, and workers stopped at teardown."""

    name: str
    app: Aarq
    clock: Clock
    make_app: Callable[..., Aarq]
    fake: FakeClock | None = None
    #: The server's URL on NATS.
    url: str | None = None
    running: list[RunningWorker] = field(default_factory=list)
    apps: list[Aarq] = field(default_factory=list)

    @property
    def memory(self) -> bool:
        """True for the in-memory backend."""
        return self.name == "memory"

    def other_app(self, **options: Any) -> Aarq:
        """Another app on the same broker and prefix (a producer, or a worker of its own)."""
        app = self.make_app(**options)
        self.apps.append(app)
        return app

    async def worker(
        self, queues: list[str] | None = None, *, app: Aarq | None = None, **options: Any
    ) -> RunningWorker:
        """Start an in-process worker (stopped at teardown); ready when this returns."""
        options.setdefault("heartbeat_interval", 0.5)
        running = await start_worker(app or self.app, queues, **options)
        self.running.append(running)
        return running

    async def pass_time(self, seconds: float) -> None:
        """Let `seconds` pass on the backend's clock: advanced in memory, slept on NATS."""
        if self.fake is not None:
            self.fake.advance(seconds)
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(seconds)

    async def close(self) -> None:
        for running in self.running:
            await running.stop()
        for app in [self.app, *self.apps]:
            await app.close()


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """The backend of this run of the test: ``nats`` (session server) or ``memory``."""
    marker = request.node.get_closest_marker("nats_only")
    if request.param == "memory" and marker is not None:
        reason = marker.args[0] if marker.args else marker.kwargs.get("reason", "")
        pytest.skip(f"NATS only: {reason}")
    if request.param == "nats":
        server: EmbeddedNats = request.getfixturevalue("nats_server")
        prefix = f"c{uuid.uuid4().hex[:10]}"

        def make_nats_app(**options: Any) -> Aarq:
            options.setdefault("ack_wait", ACK_WAIT_S)
            return Aarq(server.url, prefix=prefix, **options)

        first = make_nats_app()
        backend = Backend("nats", first, first.clock, make_nats_app, url=server.url)
        try:
            yield backend
        finally:
            await backend.close()
            await _delete_prefix(server.url, first)
        return
    clock = FakeClock(auto_advance=AUTO_ADVANCE_S)
    broker = MemoryBroker(clock=clock)

    def make_memory_app(**options: Any) -> Aarq:
        options.setdefault("ack_wait", ACK_WAIT_S)
        app = Aarq(**options)
        app.use_broker(broker)
        return app

    backend = Backend("memory", make_memory_app(), clock, make_memory_app, fake=clock)
    try:
        yield backend
    finally:
        await backend.close()
