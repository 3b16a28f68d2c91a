"""The thread pool that runs plain ``def`` tasks."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

__all__ = ["run_in_thread"]

# Threads are started on demand and reused, so a worker uses about as many as its
# concurrency; the bound only matters for runs that outlive their timeout.
_MAX_THREADS: Final = 512

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """The pool shared by the workers of this process.

    Not the event loop's default executor: that one has ``min(32, cpu_count + 4)`` threads,
    which would cap a worker's concurrency for sync tasks (6 threads on 2 cores) and let
    queued runs time out before they start.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_MAX_THREADS, thread_name_prefix="aioq-task")
        return _pool


def run_in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
    """Start ``fn(*args, **kwargs)`` in a pool thread, with the caller's contextvars."""
    call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
    future = asyncio.wrap_future(_threads().submit(call))
    # Nobody may await a run that outlived its job (forced shutdown): consume its outcome.
    future.add_done_callback(_consume)
    return future


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
