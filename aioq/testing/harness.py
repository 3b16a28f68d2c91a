"""Test helpers on a real nats-server: an isolated app, in-process workers, idle waits, shutdowns.

The pytest plugin (`aioq.testing.pytest_plugin`) wraps these in fixtures; they need no pytest
and work in any asyncio test runner::

    with EmbeddedNats() as server:
        binding = bind_app(app, server.url)          # the user's own app, a fresh prefix
        try:
            running = await start_worker(app, ["email"])
            await send_email.enqueue("ada@example.com")
            await running.wait_idle()
            await running.stop()
        finally:
            await binding.unbind()                   # close, delete the prefix, restore the app
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec

from aioq.errors import ConfigError
from aioq.naming import Names
from aioq.options import WorkerOptions
from aioq.settings import redact_urls
from aioq.wire import TERMINAL_STATES, JobRecord, JobState
from aioq.worker import Worker
from aioq.worker.execute import STOPPED_ERROR

if TYPE_CHECKING:
    from aioq.app import Aarq
    from aioq.job import Job
    from aioq.worker.execute import Stats

__all__ = [
    "AppBinding",
    "RunningWorker",
    "ShutdownReport",
    "bind_app",
    "delete_prefix",
    "queue_backlog",
    "start_worker",
    "unique_prefix",
    "wait_until_idle",
]

#: Worker options the helpers use unless told otherwise (`WorkerOptions.for_tests`).
TEST_WORKER_OPTIONS: Final = WorkerOptions.for_tests()

_POLL_S = 0.02


def unique_prefix(stem: str = "aioqt") -> str:
    """A prefix no other test uses: ``<stem>-<12 hex digits>``."""
    return f"{stem}-{uuid.uuid4().hex[:12]}"


@dataclasses.dataclass(eq=False)
class AppBinding:
    """An app pointed at a test server and prefix by `bind_app`; `unbind` undoes it."""

    app: Aarq
    url: str
    prefix: str
    _saved: tuple[Any, Names]

    async def unbind(self, *, delete: bool = True) -> None:
        """Close the app, delete what its prefix created (unless `delete` is false), restore it.

        The app gets back its own servers, credentials and prefix, so a module-level app can be
        bound again by the next test.
        """
        try:
            await self.app.close()
            if delete:
                await delete_prefix(self.url, self.prefix)
        finally:
            settings, names = self._saved
            self.app.configure(settings=settings, names=names)


def bind_app(app: Aarq, url: str, prefix: str | None = None) -> AppBinding:
    """Point `app` (not a copy: its tasks and hooks stay as they are) at `url` and a prefix.

    The app's credentials and TLS context are dropped for the test server, which has neither.

    Args:
        app: The application, typically the module-level ``app = Aarq(...)`` of the project.
        url: The test server.
        prefix: Namespace for this test (default: a fresh `unique_prefix`).

    Raises:
        ConfigError: The app is already connected; bind it before it is used.
    """
    if app.connected:
        raise ConfigError(
            f"cannot bind {app!r} to the test server: it is already connected "
            f"(to {', '.join(redact_urls(app.settings.servers))}); bind it before its first use"
        )
    prefix = prefix or unique_prefix()
    names = Names(prefix)  # validates the prefix before anything changes
    saved = (app.settings, app.names)
    test_server = dataclasses.replace(
        app.settings,
        servers=[url],
        credentials=None,
        token=None,
        user=None,
        password=None,
        tls=None,
    )
    app.configure(settings=test_server, names=names)
    return AppBinding(app, url, prefix, saved)


async def delete_prefix(url: str, prefix: str) -> list[str]:
    """Delete every stream and KV bucket of `prefix` on the server at `url`.

    That is the jobs and dead-letter streams, the workers, results, schedules and limits
    buckets, and any other ``<PREFIX>_*`` stream or ``<prefix>-*`` bucket. Returns the names of
    the deleted streams.
    """
    from aioq._nats.prefix import delete_prefix as delete_on_nats  # loads nats only when used

    return await delete_on_nats(url, prefix)


async def queue_backlog(
    app: Aarq, queues: Iterable[str], *, delayed: bool = False
) -> dict[str, int]:
    """Jobs per queue that are waiting, in flight or waiting out a retry delay.

    Read from the broker (`Broker.backlog`: on NATS, each queue's consumer has
    ``num_pending + num_ack_pending``; a queue without a consumer yet counts the jobs stored
    on its subjects). With `delayed`, delayed jobs still held count too, due or not.
    """
    broker = await app.connect()
    moment = broker.clock.time()
    backlog: dict[str, int] = {}
    for queue in queues:
        count = await broker.jobs.backlog(queue)
        if delayed:
            due, later = await broker.held.counts(queue, moment)
            count += due + later
        backlog[queue] = count
    return backlog


async def wait_until_idle(
    app: Aarq,
    queues: Iterable[str],
    *,
    workers: Sequence[Worker] = (),
    delayed: bool = False,
    timeout: float = 30.0,
) -> None:
    """Wait until `queues` hold no waiting or in-flight job and `workers` run nothing.

    Jobs waiting out a retry delay are in flight, so this waits for retries too. Delayed jobs
    that are not yet due count only with `delayed=True`. The check passes twice in a row, 50 ms
    apart, so a job between its acknowledgement and its after-job hooks is not missed.

    Raises:
        TimeoutError: Still busy after `timeout` seconds; the message says where.
    """
    wanted = list(dict.fromkeys(queues))
    deadline = time.monotonic() + timeout
    quiet_since: float | None = None
    while True:
        backlog = await queue_backlog(app, wanted, delayed=delayed)
        active = sum(w.active for w in workers)
        moment = time.monotonic()
        if not any(backlog.values()) and active == 0:
            quiet_since = quiet_since if quiet_since is not None else moment
            if moment - quiet_since >= 0.05:
                return
        else:
            quiet_since = None
        if moment >= deadline:
            busy = {q: n for q, n in backlog.items() if n}
            raise TimeoutError(
                f"queues not idle after {timeout:g} s: jobs per queue {busy}, "
                f"{active} running in the test's workers"
            )
        await asyncio.sleep(_POLL_S)


class RunningWorker:
    """An in-process `Worker` running as an asyncio task; see `start_worker`."""

    def __init__(self, worker: Worker, task: asyncio.Task[None], app: Aarq | None = None) -> None:
        self.worker = worker
        self.task = task
        self._app = app

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else f"running, {self.worker.active} active"
        return f"<RunningWorker queues={self.queues} {state}>"

    @property
    def app(self) -> Aarq:
        """The app the worker runs."""
        return self._app if self._app is not None else cast("Aarq", self.worker.app)

    @property
    def queues(self) -> list[str]:
        """The queues it pulls from."""
        return self.worker.queues

    @property
    def stats(self) -> Stats:
        """Processed, failed and retried counts."""
        return self.worker.stats

    @property
    def stopped(self) -> bool:
        """Whether `Worker.run` has returned (or failed)."""
        return self.task.done()

    async def wait_idle(self, timeout: float = 30.0, *, delayed: bool = False) -> None:
        """Wait until the worker's queues are empty and it runs nothing (`wait_until_idle`)."""
        await wait_until_idle(
            self.app, self.queues, workers=[self.worker], delayed=delayed, timeout=timeout
        )

    async def wait_stopped(self, timeout: float = 30.0) -> None:
        """Wait until `Worker.run` returns, as a burst worker does once its queues are done.

        Re-raises what `Worker.run` raised, if it failed.

        Raises:
            TimeoutError: Still running after `timeout` seconds; the message says where.
        """
        done, _ = await asyncio.wait([self.task], timeout=timeout)
        if not done:
            backlog = await queue_backlog(self.app, self.queues)
            busy = {q: n for q, n in backlog.items() if n}
            raise TimeoutError(
                f"worker still running after {timeout:g} s: jobs per queue {busy}, "
                f"{self.worker.active} running in it"
            )
        self.task.result()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop gracefully, like SIGTERM: running jobs finish within the shutdown grace.

        Waits at most `timeout` seconds (default: the grace period plus 10 s), then forces the
        stop. Re-raises what `Worker.run` raised, if it failed.
        """
        if not self.task.done():
            self.worker.stop()
            limit = timeout if timeout is not None else self.worker.shutdown_grace + 10.0
            done, _ = await asyncio.wait([self.task], timeout=limit)
            if not done:
                self.worker.stop()  # the second request cancels the running jobs
                await asyncio.wait([self.task], timeout=10.0)
            if not self.task.done():
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
        if not self.task.cancelled():
            self.task.result()

    async def simulate_shutdown(
        self,
        jobs: Iterable[Job[Any]] = (),
        *,
        running_at_least: int = 0,
        timeout: float = 30.0,
    ) -> ShutdownReport:
        """Stop the worker the way a deployment does, and account for every job in `jobs`.

        Args:
            jobs: The jobs the test enqueued; each must be settled or still queued afterwards.
            running_at_least: First wait until this many jobs run, so the stop really happens
                with jobs in flight.
            timeout: Bound on that wait, and on the stop.

        Returns:
            What the stop left behind; `ShutdownReport.assert_clean` checks it.
        """
        if running_at_least:
            deadline = time.monotonic() + timeout
            while self.worker.active < running_at_least:
                if self.task.done():
                    self.task.result()
                    raise RuntimeError("the worker stopped before enough jobs ran")
                if time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"{self.worker.active} jobs running after {timeout:g} s, "
                        f"waited for {running_at_least}"
                    )
                await asyncio.sleep(_POLL_S)
        in_flight = self.worker.active
        started = time.monotonic()
        await self.stop(timeout=timeout)
        report = ShutdownReport(
            in_flight_at_stop=in_flight,
            cancelled=self.worker.cancelled_at_stop,
            stop_seconds=time.monotonic() - started,
        )
        await report.account(self.app, jobs)
        return report


@dataclasses.dataclass
class ShutdownReport:
    """What a stopped worker left behind (`RunningWorker.simulate_shutdown`).

    Attributes:
        in_flight_at_stop: Jobs the worker was running when the stop began.
        cancelled: Jobs still running when the grace period ran out, cancelled and returned to
            their queue (0 when every in-flight job finished).
        stop_seconds: How long the stop took.
        finished: Jobs with an outcome (succeeded, failed, expired or aborted).
        waiting: Jobs still in their queue, or held as delayed jobs: a later worker runs them.
        interrupted: Jobs back in their queue after a run that was cut short.
        lost: Jobs neither settled nor queued: nothing will ever run them.
    """

    in_flight_at_stop: int = 0
    cancelled: int = 0
    stop_seconds: float = 0.0
    finished: list[Job[Any]] = dataclasses.field(default_factory=list)
    waiting: list[Job[Any]] = dataclasses.field(default_factory=list)
    interrupted: list[Job[Any]] = dataclasses.field(default_factory=list)
    lost: list[Job[Any]] = dataclasses.field(default_factory=list)
    states: dict[str, JobState | None] = dataclasses.field(default_factory=dict)

    async def account(self, app: Aarq, jobs: Iterable[Job[Any]]) -> None:
        """Sort `jobs` into finished, waiting, interrupted and lost, from the server's view."""
        broker = await app.connect()
        for job in jobs:
            raw = await broker.records.get(job.id)
            record = msgspec.json.decode(raw, type=JobRecord) if raw else None
            state = record.state if record is not None else None
            self.states[job.id] = state
            if state in TERMINAL_STATES:
                self.finished.append(job)
            elif await broker.jobs.find(job.id, job.queue) or await broker.held.find(
                job.id, job.queue
            ):
                cut_short = state is JobState.RUNNING or (
                    record is not None
                    and record.error is not None
                    and record.error.type == STOPPED_ERROR
                )
                bucket = self.interrupted if cut_short else self.waiting
                bucket.append(job)
            else:
                self.lost.append(job)

    def assert_clean(self) -> None:
        """Assert that the in-flight jobs finished within the grace period and none was lost.

        Raises:
            AssertionError: Listing the jobs that were cancelled, interrupted or lost.
        """
        problems: list[str] = []
        if self.cancelled:
            problems.append(f"{self.cancelled} in-flight jobs were cancelled at the stop")
        if self.interrupted:
            problems.append(f"interrupted: {[j.id for j in self.interrupted]}")
        if self.lost:
            lost = {j.id: self.states.get(j.id) for j in self.lost}
            problems.append(f"lost (job id: last recorded state): {lost}")
        if problems:
            raise AssertionError("unclean worker shutdown: " + "; ".join(problems))

    def assert_nothing_lost(self) -> None:
        """Assert that every job is settled or still queued (cancelled ones are requeued)."""
        if self.lost:
            lost = {j.id: self.states.get(j.id) for j in self.lost}
            raise AssertionError(f"jobs lost at the worker's stop: {lost}")


async def start_worker(
    app: Aarq, queues: Sequence[str] | str | None = None, **options: Any
) -> RunningWorker:
    """Start an in-process `Worker` and wait until it is ready to take jobs.

    Args:
        app: The app (bound to a test server, see `bind_app`).
        queues: Queues to pull from (default: every queue the app's tasks use).
        **options: `WorkerOptions` fields; `TEST_WORKER_OPTIONS` has the ones not given.

    Raises:
        Exception: Whatever made the worker fail to start (a startup hook, no server...).
    """
    if queues is None:
        queues = sorted({task.queue for task in app.tasks.values()}) or ["default"]
    worker = Worker(app, queues, options=TEST_WORKER_OPTIONS, **options)
    task = asyncio.create_task(worker.run(), name=f"aioq-test-worker-{worker.id[:8]}")
    async with asyncio.timeout(30):
        while not (worker.ready or task.done()):  # noqa: ASYNC110 - no event says "ready"
            await asyncio.sleep(_POLL_S)
    if task.done():
        task.result()
        if not worker.burst_done:  # a burst worker on empty queues may be done already
            raise RuntimeError("the worker returned before it was ready")
    return RunningWorker(worker, task, app)
