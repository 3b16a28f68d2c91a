"""Helpers for testing code that uses aioq.

- `MemoryBroker` and `FakeClock`: an in-memory backend, run with the same worker code as
  NATS (``app.use_broker(MemoryBroker(clock=FakeClock()))``), and a clock moved by hand so
  that retry backoffs, delays and ttls are tested without sleeping (docs/testing.md).
- `aioq.testing.pytest_plugin`: pytest fixtures on a real nats-server (loaded automatically
  once aioq is installed; see docs/testing.md).
- `aioq.testing.harness`: the same helpers without pytest: bind an app to a test server, run
  in-process workers, wait until queues are idle, simulate a shutdown. `start_worker`,
  `wait_until_idle` and `RunningWorker` work on both backends.
"""

from aioq.testing.clock import FakeClock, FakeTimer
from aioq.testing.harness import (
    RunningWorker,
    ShutdownReport,
    queue_backlog,
    start_worker,
    wait_until_idle,
)
from aioq.testing.memory import MemoryBroker

__all__ = [
    "FakeClock",
    "FakeTimer",
    "MemoryBroker",
    "RunningWorker",
    "ShutdownReport",
    "queue_backlog",
    "start_worker",
    "wait_until_idle",
]
