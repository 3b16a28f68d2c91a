"""`Worker`: pulls jobs from its queues and runs them, until asked to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Final

from aioq._version import __version__
from aioq.context import State
from aioq.errors import ConfigError
from aioq.naming import validate_queue
from aioq.options import seconds
from aioq.ratelimit import TokenBucket
from aioq.repeatable import Repeatable
from aioq.scheduler import Scheduler
from aioq.transport import Broker, ConsumerGoneError, Delivery, JobSource
from aioq.wire import WorkerInfo
from aioq.worker.execute import Executor, Lease, Previous, Stats
from aioq.worker.heartbeat import Heartbeat, host_identity, now
from aioq.worker.limits import SharedLimit, StartGate
from aioq.worker.scanners import Scanner, ScannerFunction
from aioq.worker.slots import Slots
from aioq.worker.watchdog import LoopWatchdog

if TYPE_CHECKING:
    from aioq.app import Aarq, Hook

__all__ = ["Worker"]

log = logging.getLogger("aioq.worker")

# Largest batch asked for at once: bigger batches save round trips, smaller ones spread a
# backlog more evenly over several workers.
MAX_BATCH: Final = 256
# How long a lingering pull waits before it is renewed; bounds how long a lost pull can idle.
FETCH_TIMEOUT_S: Final = 5.0
# The lease is renewed when a third of it has passed, leaving two thirds of margin.
LEASE_RENEW_FRACTION: Final = 3
# A loop of the worker still running this long after its cancellation is cancelled again.
_RECANCEL_AFTER_S: Final = 1.0
# How much of each payload a debug log line shows.
_DEBUG_PAYLOAD_BYTES: Final = 2000
#: Seconds between a burst worker's idle checks; it exits after two in a row find it idle,
#: so a job between its acknowledgement and its after-job hooks is not missed.
BURST_CHECK_S: Final = 0.1


class Worker:
    """Runs the jobs of one or more queues, `concurrency` at a time.

    Args:
        app: The app whose tasks the worker runs.
        queues: Queues to pull from; each has one durable consumer shared by all workers.
        concurrency: Most jobs running at once, over all of the worker's queues. One busy
            queue may use every slot; when several are busy, they share the slots equally.
        shutdown_grace: Seconds that `stop` lets running jobs finish before they are
            cancelled and returned to their queue.
        heartbeat_interval: Seconds between heartbeats in the workers bucket.
        heartbeat_ttl: Silence after which a worker's heartbeat disappears; 3 intervals by
            default. Applies when the bucket is created.
        handle_signals: Install SIGTERM/SIGINT handlers (graceful stop, then forced stop on
            the second signal) while `run` runs; only possible in the main thread.
        rate_limit: Most job starts per `rate_interval` for this worker, bursts included
            (None: no limit; 0: start nothing until `set_rate_limit`). Queue limits set with
            ``app.queue(name, rate_limit=...)`` apply on top, to all workers together.
        rate_interval: Seconds of the rate limit's window.
        scheduler: Run a scheduler inside the worker (delayed and repeatable jobs).
        repeatables: Names of the repeatables its scheduler fires (None: all of the app's).
        scan_interval: The scheduler's polling period in seconds (default 1).
        burst: Return from `run` once the queues are empty and nothing runs (docs/worker.md,
            "Burst mode"): retries and delayed jobs already due are waited for; delayed
            jobs not yet due, future repeatable ticks and paused queues are not.
        stall_warning: Seconds the event loop may stay blocked (by a task that does blocking
            or CPU-bound work in an ``async def``) before a warning names the jobs running;
            half the smallest ``ack_wait`` of its queues by default, 0 turns it off.
    """

    def __init__(
        self,
        app: Aarq,
        queues: Sequence[str] = ("default",),
        concurrency: int = 10,
        *,
        shutdown_grace: float = 30.0,
        heartbeat_interval: float = 10.0,
        heartbeat_ttl: float | None = None,
        handle_signals: bool = True,
        rate_limit: int | None = None,
        rate_interval: float | timedelta = 1.0,
        scheduler: bool = True,
        repeatables: Sequence[str | Repeatable] | None = None,
        scan_interval: float | None = None,
        burst: bool = False,
        stall_warning: float | timedelta | None = None,
    ) -> None:
        if isinstance(queues, str):
            queues = [queues]
        self.queues = list(dict.fromkeys(validate_queue(q) for q in queues))
        if not self.queues:
            raise ConfigError("a worker needs at least one queue")
        self.slots = Slots(concurrency)
        self.app = app
        self.id = str(uuid.uuid4())
        self.shutdown_grace = seconds(shutdown_grace, "shutdown_grace", allow_zero=True) or 0.0
        self.heartbeat_interval = seconds(heartbeat_interval, "heartbeat_interval") or 10.0
        self.heartbeat_ttl = seconds(heartbeat_ttl, "heartbeat_ttl") or 3 * self.heartbeat_interval
        self.handle_signals = handle_signals
        self.started_at = 0.0
        #: True once the consumers exist and the first heartbeat is written.
        self.ready = False
        #: Jobs still running when the grace period ran out (or a second signal came), which
        #: were cancelled and returned to their queue. Threads of plain-function ones may
        #: still be running: a thread cannot be interrupted.
        self.cancelled_at_stop = 0
        #: The worker's own start limit (its `limit` is None when there is none).
        self.rate_limiter = TokenBucket(rate_limit, rate_interval)
        #: The embedded scheduler, unless disabled with ``scheduler=False``.
        self.scheduler = (
            Scheduler(app, repeatables=repeatables, scan_interval=scan_interval)
            if scheduler
            else None
        )
        self.burst = burst
        #: True once a burst worker found its queues done and began to stop on its own.
        self.burst_done = False
        #: Delayed jobs not yet due that a burst worker left held at its exit.
        self.left_delayed = 0
        self.stall_warning = (
            min(app.queue(q).ack_wait for q in self.queues) / 2
            if stall_warning is None
            else seconds(stall_warning, "stall_warning", allow_zero=True) or 0.0
        )
        # Jobs that may have crashed their last worker, run one at a time (see _screen).
        self._lane: deque[_Held] = deque()
        self._lane_runner: asyncio.Task[None] | None = None
        self._lane_done = asyncio.Event()
        self._lane_done.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._scanners: list[Scanner] = []
        self._gates: dict[str, StartGate] = {}
        self._executor: Executor | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._stop_requested: asyncio.Event | None = None
        self._force: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        self._stop_early = False
        self._asked_to_stop = False

    @property
    def concurrency(self) -> int:
        """Most jobs running at once."""
        return self.slots.capacity

    @property
    def active(self) -> int:
        """Jobs running now."""
        return len(self._jobs)

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
        for gate in self._gates.values():
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
            log.info("worker %s: stopping, waiting for %d running jobs", self.id, self.active)
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
        per_loop = _CONNECTION_USERS.setdefault(self.app, weakref.WeakKeyDictionary())
        users = per_loop.setdefault(self._loop, _ConnectionUsers())
        users.opened_by_a_worker |= not self.app.connected
        users.running += 1
        try:
            broker = await self.app.connect()
        except BaseException:
            users.running -= 1
            if users.running == 0:
                users.opened_by_a_worker = False
            raise
        self._executor = Executor(self.app, broker, self.id)
        heartbeat = Heartbeat(
            broker, self.id, self.heartbeat_interval, self.heartbeat_ttl, self._info
        )
        self.started_at = now()
        try:
            # Signals are handled from here on, so a stop during start-up is graceful too.
            with self._signals():
                await _run_hooks(self.app.startup_hooks, self.app.state, "startup")
                sources = {q: await broker.open_source(q, self.app.queue(q)) for q in self.queues}
                stop_listening = await broker.listen_aborts(self._executor.abort)
                await heartbeat.beat()
                self.ready = True
                log.info(
                    "worker %s started: queues=%s concurrency=%d%s",
                    self.id,
                    ",".join(self.queues),
                    self.concurrency,
                    " burst" if self.burst else "",
                )
                _warn_queues_without_tasks(self.app, self.queues)
                try:
                    await self._serve(broker, sources, heartbeat)
                finally:
                    with contextlib.suppress(Exception):
                        await stop_listening()
        finally:
            await self._after_stop(heartbeat, users)

    async def _serve(
        self, broker: Broker, sources: Mapping[str, JobSource], heartbeat: Heartbeat
    ) -> None:
        assert self._stop_requested is not None
        # Rate-limit windows pass on the broker's clock (a FakeClock in tests).
        self.rate_limiter.clock = broker.clock.monotonic
        for queue in sources:
            options = self.app.queue(queue)
            shared = (
                SharedLimit(
                    broker.scheduling,
                    queue,
                    options.rate_limit,
                    options.rate_interval,
                    clock=broker.clock.time,
                )
                if options.rate_limit is not None
                else None
            )
            self._gates[queue] = StartGate(self.rate_limiter, shared, sleep=broker.clock.sleep)
        pullers = [
            asyncio.create_task(self._pull(broker, queue, source), name=f"aioq-pull-{queue}")
            for queue, source in sources.items()
        ]
        background = [
            asyncio.create_task(heartbeat.run(), name="aioq-heartbeat"),
            asyncio.create_task(self._keep_leases(), name="aioq-leases"),
        ]
        # Scheduling and scanners stop with the fetching, before running jobs drain.
        helpers = [
            asyncio.create_task(_keep_running(s.name, s.run), name=f"aioq-scanner-{s.name}")
            for s in self._scanners
        ]
        if self.scheduler is not None:
            helpers.append(
                asyncio.create_task(
                    _keep_running("scheduler", self.scheduler.run), name="aioq-scheduler"
                )
            )
        if self.burst:
            helpers.append(asyncio.create_task(self._watch_burst(broker), name="aioq-burst"))
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
            await _cancel_until_done(pullers)
            await _cancel_until_done(helpers)
            if self._lane_runner is not None:
                await _cancel_until_done([self._lane_runner])
            await self._drain()
            await _cancel_until_done(background)
            watchdog.stop()
        if crashed is not None:
            raise crashed

    async def _watch_burst(self, broker: Broker) -> None:
        """Burst mode: begin the stop once two checks in a row find the queues done."""
        assert self._stop_requested is not None
        # The scheduler's start fires the repeatable ticks missed before it: wait for them.
        while self.scheduler is not None and not self.scheduler.ready:  # noqa: ASYNC110
            await asyncio.sleep(BURST_CHECK_S)
        paused: set[str] = set()
        quiet = 0
        while True:
            try:
                left = await self._burst_left(broker, paused)
            except Exception as e:
                log.warning("worker %s: burst check failed (%s), checking again", self.id, e)
                left = None
            quiet = quiet + 1 if left is not None else 0
            if left is not None and quiet >= 2:
                break
            await asyncio.sleep(BURST_CHECK_S)
        self.burst_done, self.left_delayed = True, left
        stats = self.stats
        log.info(
            "worker %s: burst done, its queues are empty: ran %d jobs "
            "(%d succeeded, %d failed; %d attempts retried)",
            self.id,
            stats.processed + stats.failed,
            stats.processed,
            stats.failed,
            stats.retried,
        )
        if left:
            log.info(
                "worker %s: left %d delayed jobs that are not yet due, for a later worker",
                self.id,
                left,
            )
        self._stop_requested.set()

    async def _burst_left(self, broker: Broker, paused: set[str]) -> int | None:
        """None while a burst worker has work to wait for; else the delayed jobs it leaves.

        Work to wait for: a job running here, a queue's backlog (waiting, running anywhere,
        or waiting out a retry delay) unless the queue is paused, and, when the worker runs
        a scheduler, delayed jobs of its queues that are due (the scheduler is releasing
        them).
        """
        if self.active:
            return None
        for queue in self.queues:
            if await broker.backlog(queue) and not await self._paused(broker, queue, paused):
                return None
        left = 0
        if self.scheduler is not None:
            moment = self.scheduler.clock()
            for queue in self.queues:
                due, later = await broker.scheduling.held_jobs(queue, moment)
                if due:
                    return None
                left += later
        return None if self.active else left

    async def _paused(self, broker: Broker, queue: str, noted: set[str]) -> bool:
        """Whether `queue` is paused; logs it the first time a burst worker finds it so."""
        until = await broker.scheduling.paused_until(queue)
        if until is None:
            noted.discard(queue)
            return False
        if queue not in noted:
            noted.add(queue)
            log.info(
                "worker %s: queue %s is paused until %s; burst mode does not wait for its jobs",
                self.id,
                queue,
                until.isoformat(),
            )
        return True

    async def _pull(self, broker: Broker, queue: str, source: JobSource) -> None:
        period = self.app.queue(queue).ack_wait / LEASE_RENEW_FRACTION
        gate = self._gates.get(queue)
        slots = self.slots
        failures = 0
        try:
            while True:
                # While suspects of a crash run one at a time, fetch nothing more.
                await self._lane_done.wait()
                # Under a rate limit, wait for a start to be allowed before taking slots,
                # so that a throttled queue never holds slots another queue could use.
                most = await gate.room(MAX_BATCH) if gate and gate.limited else MAX_BATCH
                taken = await slots.acquire(most, queue)
                try:
                    deliveries = await _fetch_to_the_end(source.fetch_now(taken))
                    if not deliveries:
                        # An empty queue waits for its next job without holding a slot, so
                        # that the worker's other queues can use every one.
                        slots.release(taken, queue)
                        taken = 0
                        deliveries = await source.fetch_next(FETCH_TIMEOUT_S)
                        if deliveries:
                            taken = await self._slots_for(deliveries, queue, period)
                except asyncio.CancelledError:
                    slots.release(taken, queue)
                    raise
                except ConsumerGoneError as e:
                    slots.release(taken, queue)
                    log.warning("queue %s: its consumer is gone (%s), creating it again", queue, e)
                    await source.close()
                    source = await self._reopen(broker, queue)
                    continue
                except Exception as e:
                    slots.release(taken, queue)
                    failures += 1
                    pause = min(0.25 * 2**failures, 5.0)
                    log.warning("queue %s: fetch failed (%s), retrying in %.1fs", queue, e, pause)
                    await asyncio.sleep(pause)
                    continue
                failures = 0
                slots.release(taken - len(deliveries), queue)
                if self._stop_requested is not None and self._stop_requested.is_set():
                    # Fetched as the stop began: hand them straight back to another worker.
                    await _hand_back(deliveries)
                    slots.release(len(deliveries), queue)
                    return
                if not self._lane_done.is_set() or any(d.attempt > 1 for d in deliveries):
                    deliveries = await self._screen(deliveries, queue, period)
                if gate is not None and gate.limited and deliveries:
                    await self._admit(gate, deliveries, queue, period)
                else:
                    for delivery in deliveries:
                        self._start(delivery, queue, period)
        finally:
            await source.close()

    async def _slots_for(self, deliveries: Sequence[Delivery], queue: str, period: float) -> int:
        """Wait for a slot for each of `deliveries`, keeping their leases meanwhile."""
        assert self._executor is not None
        leases = self._executor.leases
        waiting = [Lease(d, period, time.monotonic()) for d in deliveries]
        leases.update(waiting)
        taken = 0
        try:
            while taken < len(deliveries):
                taken += await self.slots.acquire(len(deliveries) - taken, queue)
        except asyncio.CancelledError:
            self.slots.release(taken, queue)
            await _hand_back(deliveries)
            raise
        finally:
            leases.difference_update(waiting)
        return taken

    async def _screen(
        self, deliveries: Sequence[Delivery], queue: str, period: float
    ) -> Sequence[Delivery]:
        """Set aside, to run one at a time, the jobs whose last delivery may have crashed.

        A redelivered job whose last attempt left no outcome (its worker died, or its lease
        ran out) may be the one that killed the worker, or a job that died with it. Alone,
        only the job that crashes the worker loses a delivery when it crashes again. While
        such jobs wait, every job fetched joins them, and the queues fetch nothing more.
        """
        assert self._executor is not None
        again = [d for d in deliveries if d.attempt > 1]
        found = await asyncio.gather(*(self._executor.previous(d) for d in again))
        previous = {id(d): p for d, p in zip(again, found, strict=True)}
        busy = not self._lane_done.is_set()
        now_: list[Delivery] = []
        for delivery in deliveries:
            before = previous.get(id(delivery))
            if busy or before in (Previous.STARTED, Previous.UNKNOWN):
                self._quarantine(_Held(delivery, queue, period, before))
            else:
                now_.append(delivery)
        return now_

    def _quarantine(self, held: _Held) -> None:
        assert self._executor is not None
        if not self._lane:
            log.info(
                "worker %s: job seq=%d was delivered again after its attempt left no outcome; "
                "running such jobs one at a time",
                self.id,
                held.delivery.seq,
            )
        self._executor.leases.add(held.lease)
        self._lane.append(held)
        self._lane_done.clear()
        if self._lane_runner is None or self._lane_runner.done():
            self._lane_runner = asyncio.create_task(self._run_lane(), name="aioq-quarantine")

    async def _run_lane(self) -> None:
        """Run the quarantined jobs one at a time, each with no other job running."""
        assert self._executor is not None
        leases = self._executor.leases
        try:
            while self._lane:
                await self._idle.wait()
                held = self._lane.popleft()
                leases.discard(held.lease)
                job = self._start(held.delivery, held.queue, held.period, held.previous)
                await asyncio.wait([job])
        except asyncio.CancelledError:
            # The worker is stopping: hand the jobs not started back to another worker.
            waiting, self._lane = list(self._lane), deque()
            for held in waiting:
                leases.discard(held.lease)
                self.slots.release(1, held.queue)
            await _hand_back([held.delivery for held in waiting])
            raise
        finally:
            if not self._lane:
                self._lane_done.set()

    async def _admit(
        self, gate: StartGate, deliveries: Sequence[Delivery], queue: str, period: float
    ) -> None:
        """Start `deliveries` as the rate limits allow, keeping their leases while they wait.

        They normally start at once: the fetch asked for no more than the limits allowed. A
        wait happens when another queue of this worker, or another worker of this queue,
        took the tokens in between.
        """
        assert self._executor is not None
        leases = self._executor.leases
        waiting = [Lease(d, period, time.monotonic()) for d in deliveries]
        leases.update(waiting)
        try:
            while waiting:
                for _ in range(await gate.take(len(waiting))):
                    lease = waiting.pop(0)
                    leases.discard(lease)
                    self._start(lease.delivery, queue, period)
        except asyncio.CancelledError:
            # The worker is stopping: hand the unstarted jobs back to another worker.
            await _hand_back([lease.delivery for lease in waiting])
            self.slots.release(len(waiting), queue)
            raise
        finally:
            for lease in waiting:
                leases.discard(lease)

    async def _reopen(self, broker: Broker, queue: str) -> JobSource:
        """Re-create the queue's consumer, retrying with backoff until it works."""
        pause = 0.25
        while True:
            try:
                return await broker.open_source(queue, self.app.queue(queue))
            except Exception as e:
                log.warning("queue %s: cannot re-create its consumer (%s), retrying", queue, e)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _start(
        self, delivery: Delivery, queue: str, period: float, previous: Previous | None = None
    ) -> asyncio.Task[None]:
        assert self._executor is not None
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "queue %s: received seq=%d attempt=%d (%d bytes): %r",
                queue,
                delivery.seq,
                delivery.attempt,
                len(delivery.data),
                delivery.data[:_DEBUG_PAYLOAD_BYTES],
            )
        job = asyncio.create_task(self._executor.run(delivery, queue, period, previous))
        self._jobs.add(job)
        self._idle.clear()
        job.add_done_callback(lambda done: self._finished(done, queue))
        return job

    def _finished(self, job: asyncio.Task[None], queue: str) -> None:
        self._jobs.discard(job)
        if not self._jobs:
            self._idle.set()
        self.slots.release(1, queue)

    def _running_jobs(self) -> list[tuple[str, str]]:
        """(job id, task) of each job running; safe to call from another thread."""
        return self._executor.running_jobs() if self._executor else []

    async def _keep_leases(self) -> None:
        """Renew the lease of every job that has run for a third of its lease."""
        assert self._executor is not None
        leases = self._executor.leases
        tick = min(self.app.queue(q).ack_wait for q in self.queues) / (2 * LEASE_RENEW_FRACTION)
        while True:
            await asyncio.sleep(tick)
            moment = time.monotonic()
            for lease in list(leases):
                lease.check(moment)  # before the renewal: a lapse must not go unnoticed
                if moment - lease.touched >= lease.period:
                    lease.touched = moment
                    with contextlib.suppress(Exception):
                        await lease.delivery.in_progress()

    async def _drain(self) -> None:
        """Let running jobs finish within the grace period, then cancel the rest."""
        assert self._force is not None
        if self._jobs:
            force = asyncio.create_task(self._force.wait())
            finished = asyncio.create_task(_wait_all(list(self._jobs)))
            await asyncio.wait(
                [force, finished], timeout=self.shutdown_grace, return_when=asyncio.FIRST_COMPLETED
            )
            force.cancel()
            finished.cancel()
        if self._jobs:
            self.cancelled_at_stop = len(self._jobs)
            log.warning(
                "worker %s: cancelling %d jobs still running; they return to their queue",
                self.id,
                len(self._jobs),
            )
            await _cancel_all(list(self._jobs))

    async def _after_stop(self, heartbeat: Heartbeat, users: _ConnectionUsers) -> None:
        self.ready = False
        await heartbeat.remove()
        try:
            await _run_hooks(self.app.shutdown_hooks, self.app.state, "shutdown")
        finally:
            users.running -= 1
            if users.running == 0 and users.opened_by_a_worker:
                users.opened_by_a_worker = False
                await self.app.close()
            elif self.app.connected:
                broker = await self.app.connect()
                with contextlib.suppress(Exception):
                    await broker.flush(timeout=5)
            log.info("worker %s stopped: %s", self.id, self.stats)

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

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        loop = self._loop
        installed: list[signal.Signals] = []
        if self.handle_signals and loop and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
                installed.append(sig)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)  # type: ignore[union-attr]


@dataclass(slots=True, eq=False)
class _Held:
    """A job set aside to run alone, and what its start needs."""

    delivery: Delivery
    queue: str
    period: float
    previous: Previous | None
    lease: Lease = field(init=False)

    def __post_init__(self) -> None:
        self.lease = Lease(self.delivery, self.period, time.monotonic())


@dataclass(slots=True)
class _ConnectionUsers:
    """The workers running on one app in one loop, and whether a worker opened its connection.

    Each event loop has a connection of its own. The last worker to stop closes a connection
    that a worker opened, never one that the app's user opened, and never one that another
    worker still uses.
    """

    running: int = 0
    opened_by_a_worker: bool = False


_CONNECTION_USERS: weakref.WeakKeyDictionary[
    Aarq, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ConnectionUsers]
] = weakref.WeakKeyDictionary()


async def _run_hooks(hooks: list[Hook], state: State, stage: str) -> None:
    for hook in hooks:
        try:
            await hook(state)
        except Exception as e:
            name = getattr(hook, "__qualname__", repr(hook))
            raise ConfigError(f"{stage} hook {name} failed: {type(e).__name__}: {e}") from e


def _warn_queues_without_tasks(app: Aarq, queues: Sequence[str]) -> None:
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


async def _keep_running(name: str, run: Callable[[], Awaitable[None]]) -> None:
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


async def _cancel_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _cancel_until_done(tasks: Sequence[asyncio.Task[None]]) -> None:
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


async def _fetch_to_the_end(fetch: Awaitable[Sequence[Delivery]]) -> Sequence[Delivery]:
    """Await a no-wait fetch to its end, even when cancelled (the worker is stopping).

    Its answer is already on the way: a source closed before it arrives would leave the jobs
    it brings leased to nobody until their ack wait ends. Jobs that a fetch interrupted this
    way brings are handed back (nak) before the cancellation goes on.
    """
    fetching = asyncio.ensure_future(fetch)
    try:
        return await asyncio.shield(fetching)
    except asyncio.CancelledError:
        try:
            deliveries = await fetching
        except Exception:
            deliveries = []
        await _hand_back(deliveries)
        raise


async def _hand_back(deliveries: Sequence[Delivery]) -> None:
    """Return unstarted jobs to their queue for immediate redelivery."""
    for delivery in deliveries:
        with contextlib.suppress(Exception):
            await delivery.nak()


async def _wait_all(tasks: Sequence[asyncio.Task[None]]) -> None:
    await asyncio.wait(tasks)
