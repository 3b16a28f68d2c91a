"""`BackgroundLoop`: a private event loop in a daemon thread, for callers without a loop."""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundLoop", "running_loop"]

T = TypeVar("T")

# How long `stop` waits for the loop to close its connections.
_STOP_TIMEOUT_S = 10.0


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class BackgroundLoop:
    """An event loop in a daemon thread, started on first use; `run` blocks on a coroutine.

    Any number of threads may call `run` at once: their coroutines all run on the one loop.
    `stop` (also called at interpreter exit) shuts the loop down the way ``asyncio.run``
    does, cancelling what still runs, and a later `run` starts a new loop.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
        """Run ``make()`` on the loop and return its result.

        Raises:
            TimeoutError: It did not finish within `timeout` seconds (it is cancelled).
            concurrent.futures.CancelledError: The loop was stopped before it finished.
        """
        with self._lock:  # a `stop` cannot slip in between the start and the submission
            loop = self._start()
            future = asyncio.run_coroutine_threadsafe(make(), loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def stop(self) -> None:
        """Cancel what still runs on the loop, close it and end its thread."""
        with self._lock:
            loop, stopping, thread = self._loop, self._stopping, self._thread
            self._loop = self._stopping = self._thread = None
            atexit.unregister(self.stop)
        if loop is None or stopping is None or thread is None:
            return
        loop.call_soon_threadsafe(stopping.set)
        if thread is not threading.current_thread():
            thread.join(_STOP_TIMEOUT_S)

    def _start(self) -> asyncio.AbstractEventLoop:
        # A thread that is gone (as in a child process after a fork) gets a successor.
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            return self._loop
        started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]]
        started = concurrent.futures.Future()
        thread = threading.Thread(target=self._main, args=(started,), name=self._name, daemon=True)
        thread.start()
        self._loop, self._stopping = started.result()
        self._thread = thread
        atexit.register(self.stop)
        return self._loop

    def _main(
        self, started: concurrent.futures.Future[tuple[asyncio.AbstractEventLoop, asyncio.Event]]
    ) -> None:
        async def serve() -> None:
            stopping = asyncio.Event()
            started.set_result((asyncio.get_running_loop(), stopping))
            await stopping.wait()

        try:
            asyncio.run(serve())
        except BaseException as e:  # pragma: no cover - only if the loop cannot start
            if not started.done():
                started.set_exception(e)
            raise
