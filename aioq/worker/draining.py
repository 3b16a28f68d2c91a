"""Ending a worker's work: running jobs drained within the grace period, loops cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from aioq.backend import Delivery

__all__ = ["cancel_all", "cancel_until_done", "drain", "hand_back", "keep_running"]

log = logging.getLogger("aioq.worker")

# A loop of the worker still running this long after its cancellation is cancelled again.
_RECANCEL_AFTER_S: Final = 1.0


async def drain(
    jobs: set[asyncio.Task[None]], force: asyncio.Event, grace: float, worker_id: str
) -> int:
    """Let `jobs` finish within `grace` seconds (or until `force`), then cancel the rest.

    Returns how many were cancelled; a cancelled job returns to its queue.
    """
    if jobs:
        forced = asyncio.create_task(force.wait())
        finished = asyncio.create_task(_wait_all(list(jobs)))
        await asyncio.wait([forced, finished], timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        forced.cancel()
        finished.cancel()
    if not jobs:
        return 0
    left = len(jobs)
    log.warning(
        "worker %s: cancelling %d jobs still running; they return to their queue", worker_id, left
    )
    await cancel_all(list(jobs))
    return left


async def cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait until each has ended."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def cancel_until_done(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Cancel the worker's own loops, again if a cancellation gets lost, until all ended.

    On Python 3.11 `asyncio.wait_for` (which nats-py's requests use) can swallow a
    cancellation that arrives as its future completes; a loop caught that way (a heartbeat
    in mid-write) would carry on, and the worker would wait for it for ever.
    """
    pending = [task for task in tasks if not task.done()]
    while pending:
        for task in pending:
            task.cancel()
        _, still = await asyncio.wait(pending, timeout=_RECANCEL_AFTER_S)
        pending = list(still)
    await asyncio.gather(*tasks, return_exceptions=True)


async def hand_back(deliveries: Sequence[Delivery]) -> None:
    """Return unstarted jobs to their queue for immediate redelivery."""
    for delivery in deliveries:
        with contextlib.suppress(Exception):
            await delivery.nak()


async def keep_running(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a helper loop until cancelled, restarting it (after a pause) if it fails."""
    pause = 0.5
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; restarting it in %gs", name, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 30.0)


async def _wait_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    await asyncio.wait(tasks)
