"""SIGTERM/SIGINT handling while a worker runs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["stop_on_signals"]


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
