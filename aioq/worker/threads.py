"""The thread pool that runs plain ``def`` tasks."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

__all__ = ["EXIT_WAIT_S", "exit_despite_threads", "run_in_thread"]

log = logging.getLogger("aioq.worker")

# Threads are started on demand and reused, so a worker uses about as many as its
# concurrency; the bound only matters for runs that outlive their timeout.
_MAX_THREADS: Final = 512
#: How long a process whose worker cancelled jobs at its stop waits for their threads.
EXIT_WAIT_S: Final = 1.0

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


def exit_despite_threads(cancelled: int, wait: float = EXIT_WAIT_S) -> None:
    """Exit the process with 0 in `wait` seconds if the interpreter still waits for threads.

    For a process that ends with its worker (``aioq worker``): jobs cancelled at the stop
    are back in their queue and the connection is closed, but the thread of a plain-function
    job cannot be interrupted, and Python waits for it on exit (for ever, if the job never
    ends). The watchdog is a daemon thread, so a normal exit ends it.
    """

    def watchdog() -> None:
        time.sleep(wait)
        main = threading.main_thread()
        busy = [t.name for t in threading.enumerate() if not t.daemon and t is not main]
        log.warning(
            "exiting without waiting for threads still running (%s): the %d cancelled jobs were "
            "returned to their queue",
            ", ".join(busy) or "none",
            cancelled,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    threading.Thread(target=watchdog, name="aioq-exit-watchdog", daemon=True).start()
