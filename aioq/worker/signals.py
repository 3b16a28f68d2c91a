"""SIGTERM/SIGINT handling: a worker stops, a long-lived command ends."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

__all__ = ["stop_on_signals", "until_stopped"]


@contextlib.contextmanager
def stop_on_signals(
    loop: asyncio.AbstractEventLoop, stop: Callable[[], None], *, enabled: bool
) -> Iterator[None]:
    """Call `stop` on SIGTERM and SIGINT inside the block (main thread only, when `enabled`)."""
    installed: list[signal.Signals] = []
    if enabled and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


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
