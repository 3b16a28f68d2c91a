"""Runners for code that starts aioq itself: `run_worker` and `run_scheduler`.

Both run until cancelled and shut down gracefully when they are, so they fit in a
`asyncio.TaskGroup`, under `asyncio.timeout`, or beside a web server in one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aioq.repeatable import Repeatable
from aioq.scheduler import Scheduler
from aioq.worker import Worker
from aioq.worker.scanners import ScannerFunction

if TYPE_CHECKING:
    from aioq.app import Aarq

__all__ = ["run_scheduler", "run_worker"]

log = logging.getLogger("aioq.worker")


async def run_worker(
    app: Aarq,
    queues: Sequence[str] = ("default",),
    concurrency: int = 10,
    rate_limit: int | None = None,
    rate_interval: float | timedelta = 1.0,
    repeatables: Sequence[str | Repeatable] | None = None,
    scan_interval: float | None = None,
    *,
    scheduler: bool = True,
    scanners: Sequence[tuple[ScannerFunction, float | timedelta]] = (),
    handle_signals: bool = False,
    **options: Any,
) -> None:
    """Run a worker (fetching, scheduler, repeatables, heartbeats, scanners) until cancelled.

    Cancelling the call stops the worker gracefully: it fetches no more, lets running jobs
    finish within ``shutdown_grace`` (a second cancellation cuts that short), hands back what
    it had not started, and only then lets the `asyncio.CancelledError` through. It returns
    normally if the worker is stopped otherwise (a signal, with ``handle_signals=True``).

    Args:
        app: The app whose tasks run.
        queues: Queues to pull from.
        concurrency: Jobs run at once, over all the queues.
        rate_limit: Most job starts per `rate_interval` (None: no limit; 0: none).
        rate_interval: Seconds of the rate limit's window.
        repeatables: Repeatables its scheduler fires (names or objects; None: all).
        scan_interval: The scheduler's polling period (default 1 s).
        scheduler: Run the scheduler (delayed and repeatable jobs) in this worker.
        scanners: ``(async_function, interval)`` pairs run periodically while it runs.
        handle_signals: Stop gracefully on SIGTERM/SIGINT too (main thread only).
        **options: Further `Worker` options (``shutdown_grace``, ``heartbeat_interval``...).
    """
    worker = Worker(
        app,
        queues,
        concurrency,
        rate_limit=rate_limit,
        rate_interval=rate_interval,
        scheduler=scheduler,
        repeatables=repeatables,
        scan_interval=scan_interval,
        handle_signals=handle_signals,
        **options,
    )
    for fn, interval in scanners:
        worker.add_scanner(fn, interval)
    await _until_cancelled(worker.run(), worker.stop)


async def run_scheduler(
    app: Aarq,
    repeatables: Sequence[str | Repeatable] | None = None,
    scan_interval: float | None = None,
    *,
    delayed: bool = True,
) -> None:
    """Run a scheduler alone (delayed and repeatable jobs, no job execution) until cancelled."""
    scheduler = Scheduler(
        app, repeatables=repeatables, scan_interval=scan_interval, delayed=delayed
    )
    opened = not app.connected
    task = asyncio.ensure_future(scheduler.run())
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # Cancelled again if need be: on Python 3.11 nats-py's requests (asyncio.wait_for)
        # can lose a cancellation that arrives as they complete.
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        raise
    finally:
        if opened:
            await asyncio.shield(app.close())


async def _until_cancelled(run: Awaitable[None], stop: Callable[[], None]) -> None:
    """Await `run`; on cancellation call `stop()` (again on each further one) and wait for it."""
    task = asyncio.ensure_future(run)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done():
            raise
        stop()
        while not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                stop()  # a second cancellation forces the stop
        with contextlib.suppress(asyncio.CancelledError):
            task.result()
        raise
