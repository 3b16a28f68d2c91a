"""`LoopWatchdog`: a thread that notices when the worker's event loop stops answering."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Final

__all__ = ["LoopWatchdog"]

log = logging.getLogger("aioq.worker")

# Bounds of the ping period: often enough to measure a stall, rare enough to cost nothing.
_MIN_PERIOD_S: Final = 0.02
_MAX_PERIOD_S: Final = 1.0


class LoopWatchdog:
    """Warns once per stall when the event loop has not run for `threshold` seconds.

    The loop stamps the time every period; a daemon thread compares the stamp with the
    clock. A stall longer than `threshold` gets one warning naming the running jobs, and
    one more line when the loop answers again. A blocked loop renews no lease and writes no
    heartbeat: past the queue's ``ack_wait`` its jobs are delivered again elsewhere.
    """

    def __init__(
        self, threshold: float, running: Callable[[], list[tuple[str, str]]], worker_id: str
    ) -> None:
        self.threshold = threshold
        self.running = running
        self.worker_id = worker_id
        self.period = min(max(threshold / 4, _MIN_PERIOD_S), _MAX_PERIOD_S)
        self._answered = time.monotonic()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start pinging from the running loop and watching from a thread (if enabled)."""
        if self.threshold <= 0:
            return
        self._loop = asyncio.get_running_loop()
        self._ping()
        self._thread = threading.Thread(target=self._watch, name="aioq-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and the pings."""
        self._stopped.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _ping(self) -> None:
        self._answered = time.monotonic()
        self._handle = self._loop.call_later(self.period, self._ping)

    def _watch(self) -> None:
        stalled_since: float | None = None
        while not self._stopped.wait(self.period):
            answered = self._answered
            if stalled_since is None:
                stall = time.monotonic() - answered
                if stall > self.threshold:
                    stalled_since = answered
                    self._warn(stall)
            elif answered != stalled_since:
                log.warning(
                    "worker %s: the event loop answered again after %.1fs",
                    self.worker_id,
                    answered - stalled_since,
                )
                stalled_since = None

    def _warn(self, stall: float) -> None:
        running = self.running()
        jobs = ", ".join(f"{job_id} (task={task})" for job_id, task in running) or "none"
        log.warning(
            "worker %s: the event loop has been blocked for %.1fs; jobs running: %s. No lease "
            "or heartbeat is renewed while it is blocked, so past the queue's ack_wait the job "
            "runs again elsewhere. Run blocking or CPU-bound work in a plain def task (a "
            "thread) or a process, not in an async def task (see examples/cpu_bound.py)",
            self.worker_id,
            stall,
            jobs,
        )
