"""Runners for code that starts aioq itself: workers and a scheduler, run until cancelled.

`worker_loop`, `start_worker`, `run_worker` and `run_scheduler` run until cancelled and shut
down gracefully when they are, so they fit in an
`asyncio.TaskGroup`, under `asyncio.timeout`, or beside a web server in one event loop. The
worker runners take a ``backend``: a broker such as `aioq.testing.MemoryBroker` that the app
runs on instead of NATS while they run, so unit tests need no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final

from aioq.errors import ConfigError
from aioq.options import WorkerOptions
from aioq.repeatable import Repeatable
from aioq.scheduler import Scheduler
from aioq.worker import Worker

if TYPE_CHECKING:
    from aioq.app import Aarq
    from aioq.backend import Broker

__all__ = ["RUNNER_OPTIONS", "run_scheduler", "run_worker", "start_worker", "worker_loop"]

log = logging.getLogger("aioq.worker")

#: The runners' default worker options: code that runs a worker in its own loop owns the
#: signals, so the worker installs no handlers.
RUNNER_OPTIONS: Final = WorkerOptions(handle_signals=False)


async def run_worker(
    app: Aarq,
    queues: Sequence[str] | None = None,
    concurrency: int | None = None,
    rate_limit: int | None = None,
    rate_interval: float | timedelta | None = None,
    repeatables: Sequence[str | Repeatable] | None = None,
    scan_interval: float | timedelta | None = None,
    *,
    options: WorkerOptions | None = None,
    backend: Broker | None = None,
    **overrides: Any,
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
        options: The worker's settings (`WorkerOptions`); `RUNNER_OPTIONS` by default,
            which handle no signals.
        backend: A broker (e.g. `aioq.testing.MemoryBroker`) the app runs on instead of its
            own while the worker runs; see `worker_loop`.
        **overrides: Further `WorkerOptions` fields (``scheduler``, ``scanners``,
            ``shutdown_grace``, ``handle_signals``...). A positional setting left None keeps
            the value of `options`.
    """
    given = {
        "rate_limit": rate_limit,
        "rate_interval": rate_interval,
        "repeatables": repeatables,
        "scan_interval": scan_interval,
    }
    overrides.update({k: v for k, v in given.items() if v is not None})
    worker = Worker(app, queues, concurrency, options=options or RUNNER_OPTIONS, **overrides)
    async with _running_on(app, backend):
        await _until_cancelled(worker.run(), worker.stop)


async def worker_loop(
    app: Aarq,
    queue: str,
    *,
    worker_id: str | None = None,
    options: WorkerOptions | None = None,
    backend: Broker | None = None,
    **overrides: Any,
) -> None:
    """Run one consumer loop until cancelled: the jobs of `queue`, one at a time.

    Cancelling the call stops the loop gracefully, as `run_worker` does: the running job gets
    ``shutdown_grace`` to finish, and the call then ends cancelled with nothing left running.

    Args:
        app: The app whose tasks run.
        queue: The queue to pull from.
        worker_id: The loop's worker id, in heartbeats and job records (default: a new UUID).
        options: The loop's settings (`WorkerOptions`; `RUNNER_OPTIONS` by default);
            its queues and concurrency are replaced by `queue` and 1.
        backend: A broker (e.g. `aioq.testing.MemoryBroker`) the app runs on instead of its
            own while the loop runs: enqueues through the app go to it too (once the app is
            connected, see `Aarq.connected`). The app gets its own broker back afterwards.
            The app must not be connected to another broker meanwhile.
        **overrides: Further `WorkerOptions` fields (``scheduler``, ``shutdown_grace``...).
    """
    worker = Worker(app, [queue], 1, options=options or RUNNER_OPTIONS, **overrides)
    if worker_id is not None:
        worker.id = worker_id
    async with _running_on(app, backend):
        await _until_cancelled(worker.run(), worker.stop)


async def start_worker(
    app: Aarq,
    queue: str,
    concurrency: int = 1,
    *,
    options: WorkerOptions | None = None,
    backend: Broker | None = None,
    **overrides: Any,
) -> None:
    """Run `concurrency` consumer loops (`worker_loop`) on `queue` until cancelled.

    The loops share one scheduler (the first loop's, unless ``scheduler=False``) and are
    named ``<id>-1`` to ``<id>-N``. Cancelling the call stops them all gracefully and ends
    it cancelled once every loop ended; if one loop fails, the others are stopped and its
    error is raised.

    Args:
        app: The app whose tasks run.
        queue: The queue to pull from.
        concurrency: How many loops, hence jobs at once.
        options: Every loop's settings (`WorkerOptions`; `RUNNER_OPTIONS` by default).
        backend: A broker the app runs on instead of its own meanwhile; see `worker_loop`.
        **overrides: Further `WorkerOptions` fields for every loop.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(f"concurrency must be an integer >= 1, got {concurrency!r}")
    base_options = (options or RUNNER_OPTIONS).replace(**overrides)
    scheduler = base_options.scheduler
    base = uuid.uuid4().hex[:12]
    async with _running_on(app, backend):
        loops = [
            asyncio.create_task(
                worker_loop(
                    app,
                    queue,
                    worker_id=f"{base}-{n}",
                    options=base_options,
                    scheduler=scheduler and n == 1,
                ),
                name=f"aioq-worker-loop-{n}",
            )
            for n in range(1, concurrency + 1)
        ]
        await _all_until_cancelled(loops)


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


async def _all_until_cancelled(loops: list[asyncio.Task[None]]) -> None:
    """Await `loops`; on cancellation, or when one fails, stop all (gracefully) and wait."""
    try:
        await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        pending = [loop for loop in loops if not loop.done()]
        for loop in pending:
            loop.cancel()
        cancelled_again = False
        while pending:
            try:
                await asyncio.wait(pending)
            except asyncio.CancelledError:
                cancelled_again = True
                for loop in pending:
                    loop.cancel()  # a further cancellation forces their stop
            pending = [loop for loop in pending if not loop.done()]
        if cancelled_again:
            raise asyncio.CancelledError
    for loop in loops:
        error = None if loop.cancelled() else loop.exception()
        if error is not None:
            raise error


@dataclass(slots=True)
class _Binding:
    """An app running on a runner's backend: the broker it had chosen before, and users."""

    backend: Broker
    previous: Broker | None
    users: int = 0


_BINDINGS: weakref.WeakKeyDictionary[Aarq, _Binding] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def _running_on(app: Aarq, backend: Broker | None) -> AsyncIterator[None]:
    """Run `app` on `backend` (if given) inside the block, then give it its own broker back."""
    if backend is None:
        yield
        return
    binding = _BINDINGS.get(app)
    if binding is None:
        connected = app._connections.any()
        if connected is not None and connected is not backend:
            raise ConfigError(
                "the app is connected to another broker: close it (await app.close()) "
                "before running a worker on a backend"
            )
        binding = _BINDINGS[app] = _Binding(backend, app._chosen_broker)
        app._chosen_broker = backend
    elif binding.backend is not backend:
        raise ConfigError("the app runs on another backend already (another runner's)")
    binding.users += 1
    try:
        yield
    finally:
        binding.users -= 1
        if binding.users == 0:
            del _BINDINGS[app]
            app._chosen_broker = binding.previous


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
