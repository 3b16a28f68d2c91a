"""Run a long-lived command until it ends, or until SIGINT or SIGTERM stops it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from aioq.worker.signals import stop_on_signals

__all__ = ["until_stopped"]


async def until_stopped(work: Coroutine[Any, Any, None]) -> None:
    """Run `work`; on SIGINT or SIGTERM cancel it and return. Raises what `work` raised.

    The signal handlers are installed only in the main thread.
    """
    task = asyncio.ensure_future(work)
    stopped = asyncio.Event()
    stop = asyncio.ensure_future(stopped.wait())
    try:
        with stop_on_signals(asyncio.get_running_loop(), stopped.set, enabled=True):
            await asyncio.wait([task, stop], return_when=asyncio.FIRST_COMPLETED)
            # Cancelled again if need be: on Python 3.11 a cancellation that arrives as a NATS
            # request completes can be lost inside nats-py.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=1.0)
        with contextlib.suppress(asyncio.CancelledError):
            task.result()
    finally:
        task.cancel()
        stop.cancel()
