"""`Worker`: pulls jobs from its queues and runs them, until asked to stop.

The worker composes its parts: `fetching` (pull loops, admission), `leases` (renewal),
`burst` (stopping once the queues are done), `signals` and `draining` (the stop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aioq._version import __version__
from aioq.backend import Broker, JobSource
from aioq.context import State
from aioq.errors import ConfigError
from aioq.options import WorkerOptions
from aioq.ratelimit import TokenBucket
from aioq.scheduler import Scheduler
from aioq.wire import WorkerInfo
from aioq.worker.burst import BurstWatch
from aioq.worker.draining import cancel_until_done, drain, keep_running
from aioq.worker.execute import Executor, Stats
from aioq.worker.fetching import Fetching
from aioq.worker.heartbeat import Heartbeat, host_identity, now
from aioq.worker.instruments import attempt_tracer, open_metrics
from aioq.worker.leases import LEASE_RENEW_FRACTION, keep_leases
from aioq.worker.levels import LeveledSource, open_queue
from aioq.worker.observe import SILENT
from aioq.worker.scanners import Scanner, ScannerFunction
from aioq.worker.signals import stop_on_signals
from aioq.worker.slots import Slots
from aioq.worker.watchdog import LoopWatchdog

if TYPE_CHECKING:
    from aioq.context import Hook
    from aioq.metrics import WorkerMetrics
    from aioq.ports import WorkerApp

__all__ = ["Worker"]

log = logging.getLogger("aioq.worker")


class Worker:
    """Runs the jobs of one or more queues, `concurrency` at a time.

    Args:
        app: The app whose tasks the worker runs.
        queues: Queues to pull from (`WorkerOptions.queues`).
        concurrency: Most jobs running at once (`WorkerOptions.concurrency`).
        options: The worker's settings; `WorkerOptions` describes each and its default.
        **overrides: Fields of `WorkerOptions` that replace those of `options`
            (``Worker(app, ["emails"], 4, shutdown_grace=10)``).
    """

    def __init__(
        self,
        app: WorkerApp,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        *,
        options: WorkerOptions | None = None,
        **overrides: Any,
    ) -> None:
        if queues is not None:
            overrides["queues"] = queues
        if concurrency is not None:
            overrides["concurrency"] = concurrency
        self.options = options = (options or WorkerOptions()).replace(**overrides)
        self.queues = list(options.queues)
        self.slots = Slots(options.concurrency)
        self.app = app
        self.id = str(uuid.uuid4())
        self.shutdown_grace = _seconds(options.shutdown_grace)
        self.heartbeat_interval = _seconds(options.heartbeat_interval)
        self.heartbeat_ttl = (
            3 * self.heartbeat_interval
            if options.heartbeat_ttl is None
            else _seconds(options.heartbeat_ttl)
        )
        self.handle_signals = options.handle_signals
        self.started_at = 0.0
        #: True once the consumers exist and the first heartbeat is written.
        self.ready = False
        #: Each queue's puller while running (its `levels` are the priority levels pulled).
        self.sources: dict[str, LeveledSource] = {}
        #: Jobs still running when the grace period ran out (or a second signal came), which
        #: were cancelled and returned to their queue. Threads of plain-function ones may
        #: still be running: a thread cannot be interrupted.
        self.cancelled_at_stop = 0
        #: The worker's own start limit (its `limit` is None when there is none).
        self.rate_limiter = TokenBucket(options.rate_limit, options.rate_interval)
        #: The embedded scheduler, unless disabled with ``scheduler=False``.
        self.scheduler = (
            Scheduler(
                app,
                repeatables=options.repeatables,
                scan_interval=_seconds(options.scan_interval),
            )
            if options.scheduler
            else None
        )
        self.burst = options.burst
        #: True once a burst worker found its queues done and began to stop on its own.
        self.burst_done = False
        #: Delayed jobs not yet due that a burst worker left held at its exit.
        self.left_delayed = 0
        self.stall_warning = (
            min(app.queue(q).ack_wait for q in self.queues) / 2
            if options.stall_warning is None
            else _seconds(options.stall_warning)
        )
        self._scanners: list[Scanner] = []
        #: Where the metrics are served, ``(host, port)``, once the worker runs with them.
        self.metrics_address: tuple[str, int] | None = None
        self._metrics: WorkerMetrics | None = None
        self._executor: Executor | None = None
        self._fetching: Fetching | None = None
        self._stop_requested: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._stop_early = False
        self._asked_to_stop = False
        for fn, interval in options.scanners:
            self.add_scanner(fn, interval)

    @property
    def concurrency(self) -> int:
        """Most jobs running at once."""
        return self.slots.capacity

    @property
    def active(self) -> int:
        """Jobs running now."""
        return len(self._fetching.jobs) if self._fetching else 0

    @property
    def stats(self) -> Stats:
        """Processed, failed and retried counts since the worker started."""
        return self._executor.stats if self._executor else Stats()

    def set_concurrency(self, concurrency: int) -> None:
        """Change how many jobs the worker runs at once, while it runs.

        A larger value takes effect at once; with a smaller one the jobs already running
        finish, and new ones start only once fewer than `concurrency` run.
        """
        self.slots.resize(concurrency)

    def set_rate_limit(
        self, rate_limit: int | None, rate_interval: float | timedelta | None = None
    ) -> None:
        """Change the worker's own start limit while it runs (None lifts it, 0 pauses)."""
        self.rate_limiter.reconfigure(rate_limit, rate_interval)
        if self._fetching is not None:
            for gate in self._fetching.gates.values():
                gate.changed()

    def add_scanner(
        self, fn: ScannerFunction, interval: float | timedelta, *, name: str | None = None
    ) -> None:
        """Run ``await fn()`` when the worker starts and every `interval` seconds after.

        Scanners start once the worker is ready and are cancelled when it stops; one that
        raises is logged and runs again on time. Add them before `run`.
        """
        if self._loop is not None:
            raise ConfigError("add scanners before the worker runs")
        every = interval.total_seconds() if isinstance(interval, timedelta) else interval
        self._scanners.append(Scanner.build(fn, every, name))

    def stop(self) -> None:
        """Start the graceful stop: fetch no more, let running jobs finish, then return.

        A second call forces the stop: running jobs are cancelled and returned to their queue.
        Safe to call from a signal handler or another thread.
        """
        loop = self._loop
        if loop is None:
            # Not running yet (e.g. `run_worker` cancelled before the worker started): the
            # worker stops as soon as it starts.
            self._stop_early = True
            return
        if threading.get_ident() != self._thread:
            loop.call_soon_threadsafe(self.stop)
            return
        assert self._stop_requested is not None
        assert self._force is not None
        if self._asked_to_stop:
            log.warning("worker %s: second stop request, cancelling running jobs", self.id)
            self._force.set()
            return
        self._asked_to_stop = True
        if not self._stop_requested.is_set():  # (a burst worker may be stopping already)
            log.info(
                "worker %s: stopping, waiting for %d running jobs",
                self.id,
                self.active,
                extra={"worker_id": self.id},
            )
            self._stop_requested.set()

    async def run(self) -> None:
        """Run until `stop` (or SIGTERM/SIGINT), then shut down gracefully and return."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._stop_requested, self._force = asyncio.Event(), asyncio.Event()
        self._asked_to_stop = False
        if self._stop_early:
            self._stop_early = False
            self._stop_requested.set()
        metrics = self._serve_metrics()
        users = self.app.worker_users
        users.join(self.app.connected)
        try:
            broker = await self.app.connect()
        except BaseException:
            users.leave()
            await self._close_metrics()
            raise
        self._executor = Executor(self.app, broker, self.id, metrics or SILENT, attempt_tracer())
        self._fetching = Fetching(
            self._executor,
            self.slots,
            self.app.queue,
            self.options.max_batch,
            self._stop_requested,
        )
        heartbeat = Heartbeat(
            broker, self.id, self.heartbeat_interval, self.heartbeat_ttl, self._info
        )
        self.started_at = now()
        try:
            # Signals are handled from here on, so a stop during start-up is graceful too.
            with stop_on_signals(self._loop, self.stop, enabled=self.handle_signals):
                await _run_hooks(self.app.startup_hooks, self.app.state, "startup")
                self.sources = sources = {
                    q: await open_queue(broker.jobs, q, self.app.queue(q)) for q in self.queues
                }
                stop_listening = await broker.events.listen_aborts(self._executor.abort)
                await heartbeat.first()
                self.ready = True
                log.info(
                    "worker %s started: queues=%s concurrency=%d%s",
                    self.id,
                    ",".join(self.queues),
                    self.concurrency,
                    " burst" if self.burst else "",
                    extra={"worker_id": self.id},
                )
                _warn_queues_without_tasks(self.app, self.queues)
                try:
                    await self._serve(broker, sources, heartbeat)
                finally:
                    with contextlib.suppress(Exception):
                        await stop_listening()
        finally:
            await self._after_stop(heartbeat)

    async def _serve(
        self, broker: Broker, sources: Mapping[str, JobSource], heartbeat: Heartbeat
    ) -> None:
        assert self._stop_requested is not None
        assert self._executor is not None
        assert self._fetching is not None
        fetching = self._fetching
        # Rate-limit windows pass on the broker's clock (a FakeClock in tests).
        self.rate_limiter.clock = broker.clock.monotonic
        fetching.open_gates(broker, list(sources), self.rate_limiter, self.app.group_limits)
        pullers = [
            asyncio.create_task(fetching.pull(broker, queue, source), name=f"aioq-pull-{queue}")
            for queue, source in sources.items()
        ]
        smallest_ack_wait = min(self.app.queue(q).ack_wait for q in self.queues)
        background = [
            asyncio.create_task(heartbeat.run(), name="aioq-heartbeat"),
            asyncio.create_task(
                keep_leases(
                    self._executor.leases, smallest_ack_wait, self._executor.observer.renewed
                ),
                name="aioq-leases",
            ),
        ]
        if fetching.groups is not None:
            # Group places live one lease: renewed like the jobs' leases, a third in.
            period = smallest_ack_wait / LEASE_RENEW_FRACTION
            background.append(asyncio.create_task(fetching.groups.keep(period), name="aioq-groups"))
        if self._metrics is not None:
            background.append(
                asyncio.create_task(self._metrics.sample(broker.jobs.backlog), name="aioq-metrics")
            )
        helpers = self._start_helpers(broker)
        watchdog = LoopWatchdog(self.stall_warning, self._running_jobs, self.id)
        watchdog.start()
        crashed: BaseException | None = None
        try:
            stop_wait = asyncio.create_task(self._stop_requested.wait())
            await asyncio.wait([stop_wait, *pullers], return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            for puller in pullers:
                if puller.done() and not puller.cancelled() and puller.exception():
                    crashed = puller.exception()
                    log.error("worker %s: %s stopped: %r", self.id, puller.get_name(), crashed)
        finally:
            await cancel_until_done(pullers)
            await cancel_until_done(helpers)
            await fetching.stop_lane()
            assert self._force is not None
            self.cancelled_at_stop = (
                await drain(fetching.jobs, self._force, self.shutdown_grace, self.id)
                or self.cancelled_at_stop
            )
            await cancel_until_done(background)
            watchdog.stop()
        if crashed is not None:
            raise crashed

    def _start_helpers(self, broker: Broker) -> list[asyncio.Task[None]]:
        """Start scanners, the scheduler and the burst watch: they stop with the fetching."""
        helpers = [
            asyncio.create_task(keep_running(s.name, s.run), name=f"aioq-scanner-{s.name}")
            for s in self._scanners
        ]
        if self.scheduler is not None:
            helpers.append(
                asyncio.create_task(
                    keep_running("scheduler", self.scheduler.run), name="aioq-scheduler"
                )
            )
        if self.burst:
            helpers.append(asyncio.create_task(self._watch_burst(broker), name="aioq-burst"))
        return helpers

    async def _watch_burst(self, broker: Broker) -> None:
        """Burst mode: begin the stop once two checks in a row find the queues done."""
        assert self._stop_requested is not None
        watch = BurstWatch(self.id, self.queues, lambda: self.active, self.scheduler)
        left = await watch.until_done(broker)
        self.burst_done, self.left_delayed = True, left
        watch.log_done(self.stats, left)
        self._stop_requested.set()

    def _running_jobs(self) -> list[tuple[str, str]]:
        """(job id, task) of each job running; safe to call from another thread."""
        return self._executor.running_jobs() if self._executor else []

    async def _after_stop(self, heartbeat: Heartbeat) -> None:
        self.ready = False
        await heartbeat.remove()
        try:
            await _run_hooks(self.app.shutdown_hooks, self.app.state, "shutdown")
        finally:
            await self._close_metrics()
            if self.app.worker_users.leave():
                await self.app.close()
            elif self.app.connected:
                broker = await self.app.connect()
                with contextlib.suppress(Exception):
                    await broker.flush(timeout=5)
            log.info("worker %s stopped: %s", self.id, self.stats, extra={"worker_id": self.id})

    def _serve_metrics(self) -> WorkerMetrics | None:
        """Start serving the metrics, if the options ask for them."""
        self._metrics = metrics = open_metrics(
            self.options, self.id, self.queues, lambda: self.concurrency
        )
        if metrics is not None:
            host, port = metrics.serve(self.options.metrics_host, self.options.metrics_port or 0)
            self.metrics_address = (host, port)
            log.info(
                "worker %s: metrics on http://%s:%d/metrics",
                self.id,
                host,
                port,
                extra={"worker_id": self.id},
            )
        return metrics

    async def _close_metrics(self) -> None:
        if self._metrics is not None:
            metrics, self._metrics, self.metrics_address = self._metrics, None, None
            # In a thread: the server notices the shutdown at its next poll, up to 0.5 s.
            await asyncio.to_thread(metrics.close)

    def _info(self) -> WorkerInfo:
        hostname, pid = host_identity()
        stats = self.stats
        return WorkerInfo(
            id=self.id,
            hostname=hostname,
            pid=pid,
            queues=self.queues,
            concurrency=self.concurrency,
            active=self.active,
            processed=stats.processed,
            failed=stats.failed,
            retried=stats.retried,
            started_at=self.started_at,
            heartbeat_at=now(),
            version=__version__,
        )


def _seconds(value: float | timedelta) -> float:
    """A duration of `WorkerOptions` (validated there) as float seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


async def _run_hooks(hooks: Sequence[Hook], state: State, stage: str) -> None:
    for hook in hooks:
        try:
            await hook(state)
        except Exception as e:
            name = getattr(hook, "__qualname__", repr(hook))
            raise ConfigError(f"{stage} hook {name} failed: {type(e).__name__}: {e}") from e


def _warn_queues_without_tasks(app: WorkerApp, queues: Sequence[str]) -> None:
    """Warn about queues that no task of the app sends jobs to (a typo in ``-q``?)."""
    used = sorted({task.queue for task in app.tasks.values()})
    for queue in queues:
        if queue not in used:
            log.warning(
                "queue %s: no task of the app uses it, so no job of this app will come (a typo?); "
                "the app's tasks use: %s",
                queue,
                ", ".join(used) or "no queue (the app has no tasks)",
            )
