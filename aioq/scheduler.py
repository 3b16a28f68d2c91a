"""`Scheduler`: moves delayed jobs to their queues when due, and fires repeatable jobs.

Any number of schedulers may run at once (one inside each worker by default, or ``aioq
scheduler`` alone); none is a leader. Delayed jobs: each held job is handed to one scheduler
at a time by a shared JetStream consumer, and the server itself wakes it at its due time.
Repeatable jobs: every scheduler publishes every tick under the tick's deterministic job id,
and JetStream's deduplication stores it once. A small record per repeatable (the last tick
fired) lets a scheduler that starts after an outage apply the missed-tick policy, and stops
a scheduler with a slow clock from firing a tick the others fired long ago.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final

from aioq.backend import Broker, ConsumerGoneError, Control, HeldJob, HeldJobs
from aioq.cron import ticks_between
from aioq.dependencies import release_waiting
from aioq.errors import ConfigError
from aioq.options import seconds
from aioq.repeatable import Missed, Repeatable
from aioq.wire import DeadLetter, DeadReason, ErrorInfo, encode

if TYPE_CHECKING:
    from aioq.ports import SchedulingApp

__all__ = ["DEFAULT_SCAN_INTERVAL", "Scheduler", "select_repeatables"]

log = logging.getLogger("aioq.scheduler")

#: How often a scheduler renews its pull on the held jobs and re-reads the clock for
#: repeatables. Held jobs are woken by the server at their due time whatever this is; it
#: bounds how late a job can be when a wake-up is lost (a reconnect) and how long a
#: wall-clock jump goes unnoticed.
DEFAULT_SCAN_INTERVAL: Final = 1.0
# A held job due within this many seconds is waited for here instead of handed back: a nak
# and its redelivery cost more than the wait.
LOCAL_WAIT_S: Final = 0.05
# Delay before a held job whose publish failed is tried again.
RELEASE_RETRY_S: Final = 1.0
#: The longest a held job is handed back for at once: one due later comes back after this
#: long and is handed back again, until it is due (nak delays have a ceiling on JetStream).
MAX_POSTPONE_S: Final = 86_400.0
# Held jobs published at once; more wait for a free place.
MAX_RELEASING: Final = 256
# A tick handled within this many seconds of its time is on time; an older one was missed,
# and the repeatable's missed-tick policy decides.
ON_TIME_S: Final = 10.0
# With the "all" policy, at most this many missed ticks are fired after an outage.
MAX_CATCH_UP: Final = 100
# Pause after a failure before the next attempt, doubling up to the cap.
_RETRY_FIRST_S: Final = 0.25
_RETRY_CAP_S: Final = 5.0
# The same for the held jobs' consumer: a deleted one is re-created almost at once, one that
# keeps failing (a clustered stream without a leader) is retried every few seconds.
_HELD_RETRY_FIRST_S: Final = 0.05
_HELD_RETRY_CAP_S: Final = 2.0
# Room left in a dead letter for everything but the payload.
_DEAD_RECORD_OVERHEAD: Final = 24_000


def select_repeatables(
    app: SchedulingApp, chosen: Sequence[str | Repeatable] | None
) -> list[Repeatable]:
    """The repeatables a scheduler fires: all of the app's, or those named in `chosen`."""
    if chosen is None:
        return list(app.repeatables.values())
    if isinstance(chosen, str):
        chosen = [chosen]
    picked: list[Repeatable] = []
    for item in chosen:
        if isinstance(item, Repeatable):
            picked.append(item)
            continue
        try:
            picked.append(app.repeatables[item])
        except KeyError:
            known = ", ".join(sorted(app.repeatables)) or "none"
            raise ConfigError(f"unknown repeatable {item!r} (defined: {known})") from None
    return list({r.name: r for r in picked}.values())


class Scheduler:
    """Moves due delayed jobs to their queues and fires repeatable jobs, until cancelled.

    Args:
        app: The app whose delayed jobs and repeatables are scheduled.
        repeatables: Names (or objects) of the repeatables to fire; all of the app's if None,
            none if empty.
        scan_interval: See `DEFAULT_SCAN_INTERVAL` (seconds, default 1).
        delayed: Move delayed jobs (default); False fires repeatables only.
        clock: Wall-clock time source (unix seconds); default: the app's clock, i.e. its
            broker's (a `aioq.testing.FakeClock` makes the scheduler wait on that clock).
    """

    def __init__(
        self,
        app: SchedulingApp,
        *,
        repeatables: Sequence[str | Repeatable] | None = None,
        scan_interval: float | None = None,
        delayed: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.app = app
        self.repeatables = select_repeatables(app, repeatables)
        self.scan_interval = (
            seconds(scan_interval, "scan_interval") if scan_interval is not None else None
        ) or DEFAULT_SCAN_INTERVAL
        self.delayed = delayed
        self.clock: Callable[[], float]
        self._sleep: Callable[[float], Awaitable[None]]
        if clock is None:
            # Read at each call: the app's broker, and so its clock, may be chosen later.
            self.clock = lambda: app.clock.time()
            self._sleep = lambda seconds: app.clock.sleep(seconds)
        else:
            self.clock, self._sleep = clock, asyncio.sleep
        #: True once the held jobs' consumer exists and every repeatable has its start point
        #: and has fired the ticks that were due when the scheduler started.
        self.ready = False
        #: Delayed jobs this scheduler moved to their queue (first to do so).
        self.released = 0
        #: Ticks this scheduler stored (others found them stored already).
        self.fired = 0
        self._releasing = asyncio.Semaphore(MAX_RELEASING)
        # Releases failed since the last one that worked: one warning per outage, not per job.
        self._release_failures = 0
        self._pending: set[asyncio.Task[None]] = set()
        self._starting = 0

    async def run(self) -> None:
        """Schedule until cancelled."""
        broker = await self.app.connect()
        loops = len(self.repeatables) + (1 if self.delayed else 0)
        self._starting = loops
        self.ready = loops == 0
        log.info(
            "scheduler started: delayed jobs %s, repeatables %s, scan interval %gs",
            "on" if self.delayed else "off",
            ",".join(r.name for r in self.repeatables) or "none",
            self.scan_interval,
        )
        async with asyncio.TaskGroup() as group:
            if self.delayed:
                group.create_task(self._move_delayed(broker), name="aioq-delayed")
                group.create_task(release_waiting(broker, self.scan_interval), name="aioq-waiting")
            for repeatable in self.repeatables:
                group.create_task(
                    self._repeat(broker.control, repeatable), name=f"aioq-repeat-{repeatable.name}"
                )
            if loops == 0:
                await asyncio.Event().wait()  # nothing to do, but live as long as asked to

    def _started(self) -> None:
        self._starting -= 1
        if self._starting <= 0:
            self.ready = True

    # -- delayed jobs --------------------------------------------------------------------------

    async def _move_delayed(self, broker: Broker) -> None:
        source: HeldJobs | None = None
        pause = _HELD_RETRY_FIRST_S
        outage_since: float | None = None  # monotonic start of the failure being retried
        announced = False
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    if source is None:
                        source = await broker.held.open()
                        if not announced:
                            announced = True
                            self._started()
                    held = await source.fetch(self.scan_interval)
                except Exception as e:
                    gone = isinstance(e, ConsumerGoneError)
                    if outage_since is None:
                        outage_since = loop.time()
                        log.warning(
                            "scheduler: %s (%s); retrying every %gs at most until it works",
                            "the held jobs' consumer is gone, re-creating it"
                            if gone
                            else "cannot pull held jobs",
                            _one_line(e),
                            _HELD_RETRY_CAP_S,
                        )
                    else:
                        log.debug("scheduler: held jobs still unavailable: %s", _one_line(e))
                    await _closed(source)
                    source = None
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, _HELD_RETRY_CAP_S)
                    continue
                if outage_since is not None:
                    log.warning(
                        "scheduler: pulling held jobs again after %.1fs",
                        loop.time() - outage_since,
                    )
                    outage_since = None
                pause = _HELD_RETRY_FIRST_S
                for job in held:
                    await self._handle(job, broker)
        finally:
            pending = list(self._pending)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await _closed(source)

    async def _handle(self, job: HeldJob, broker: Broker) -> None:
        if job.run_at_error is not None:
            await self._dead_letter(job, broker, job.run_at_error)
            return
        if job.run_at is None:
            log.warning(
                "scheduler: held job %s on queue %s has no run-at time; releasing it now",
                job.job_id,
                job.queue,
            )
            remaining = 0.0
        else:
            remaining = job.run_at - self.clock()
        if remaining > LOCAL_WAIT_S:
            try:
                await job.postpone(min(remaining, MAX_POSTPONE_S))
            except Exception as e:
                # The lease runs out and the job comes back to some scheduler.
                log.warning("scheduler: cannot postpone held job %s: %s", job.job_id, e)
            return
        task = asyncio.create_task(self._release(job, remaining))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _dead_letter(self, job: HeldJob, broker: Broker, problem: str) -> None:
        """Move a held job whose due time is unreadable to the dead letters, once."""
        letter = DeadLetter(
            id=job.job_id,
            queue=job.queue,
            reason=DeadReason.BAD_PAYLOAD,
            attempts=0,
            dead_at=self.clock(),
            payload=job.data,
            error=ErrorInfo(type="InvalidRunAt", message=problem),
            stream_seq=job.seq,
        )
        room = broker.max_payload - _DEAD_RECORD_OVERHEAD
        if len(job.data) * 4 // 3 > room:  # payloads travel base64-encoded
            letter.payload = job.data[: max(0, room * 3 // 4)]
            letter.payload_truncated = True
        try:
            await broker.dead.publish(
                job.queue, job.job_id, encode(letter), f"{job.job_id}:held:{job.seq}"
            )
            await job.discard()
        except Exception as e:
            log.warning(
                "scheduler: cannot dead-letter held job %s (%s), retrying in %gs",
                job.job_id,
                _one_line(e),
                RELEASE_RETRY_S,
            )
            with contextlib.suppress(Exception):
                await job.postpone(RELEASE_RETRY_S)
            return
        log.warning(
            "scheduler: held job %s on queue %s dead-lettered (bad_payload): %s",
            job.job_id,
            job.queue,
            problem,
        )

    async def _release(self, job: HeldJob, wait: float) -> None:
        released = False
        try:
            if wait > 0:
                await self._sleep(wait)
            async with self._releasing:
                # Never early: the wait above or a skewed redelivery may end a little short.
                while (left := (job.run_at or 0.0) - self.clock()) > 0:
                    await self._sleep(left)
                duplicate = await job.release()
            released = True
            if not duplicate:
                self.released += 1
            log.debug("scheduler: released job %s to queue %s", job.job_id, job.queue)
            if self._release_failures:
                log.warning(
                    "scheduler: releasing held jobs works again (%d attempts had failed)",
                    self._release_failures,
                )
                self._release_failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._release_failures += 1
            log.log(
                logging.WARNING if self._release_failures == 1 else logging.DEBUG,
                "scheduler: cannot move job %s to queue %s (%s), retrying in %gs",
                job.job_id,
                job.queue,
                e,
                RELEASE_RETRY_S,
            )
            with contextlib.suppress(Exception):
                await job.postpone(RELEASE_RETRY_S)
            released = True
        finally:
            if not released:
                with contextlib.suppress(Exception):
                    await job.hand_back()

    # -- repeatable jobs ---------------------------------------------------------------------

    async def _repeat(self, control: Control, repeatable: Repeatable) -> None:
        handled = await self._start_point(control, repeatable)
        if repeatable.schedule.next_after(handled) <= self.clock():
            # Ticks due at the start (missed ones) are fired before `ready`, so that a burst
            # worker, which starts its idle checks once its scheduler is ready, runs them.
            try:
                handled = await self._fire_due(control, repeatable, handled)
            except Exception as e:
                log.warning(
                    "scheduler: repeatable %s: cannot fire (%s), retrying", repeatable.name, e
                )
        self._started()
        pause = _RETRY_FIRST_S
        failures = 0
        while True:
            await self._sleep_until(repeatable.schedule.next_after(handled))
            try:
                handled = await self._fire_due(control, repeatable, handled)
            except Exception as e:
                failures += 1
                # The first failure of an outage is a warning; the retries are debug lines.
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "scheduler: repeatable %s: cannot fire (%s), retrying in %.1fs",
                    repeatable.name,
                    e,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RETRY_CAP_S)
                continue
            if failures:
                log.warning(
                    "scheduler: repeatable %s fires again (%d attempts had failed)",
                    repeatable.name,
                    failures,
                )
            pause, failures = _RETRY_FIRST_S, 0

    async def _start_point(self, control: Control, repeatable: Repeatable) -> float:
        """Ticks up to the returned time are settled: the last recorded tick, else now."""
        try:
            recorded = await control.last_tick(repeatable.name)
        except Exception as e:
            log.warning("scheduler: repeatable %s: cannot read its record (%s)", repeatable.name, e)
            recorded = None
        # Without a record nothing was missed: a new repeatable starts with its next tick.
        return recorded if recorded is not None else self.clock()

    async def _sleep_until(self, moment: float) -> None:
        # Short sleeps re-read the wall clock, so a clock step is noticed within one interval.
        while (left := moment - self.clock()) > 0:
            await self._sleep(min(left, self.scan_interval))

    async def _fire_due(self, control: Control, repeatable: Repeatable, handled: float) -> float:
        """Fire what is due after `handled`; returns the new `handled`."""
        now = self.clock()
        due = ticks_between(repeatable.schedule, handled, now, MAX_CATCH_UP)  # newest first
        if not due:
            return handled
        try:
            recorded = await control.last_tick(repeatable.name)
        except Exception as e:
            # Publishing without the record is still safe within the dedupe window.
            log.debug("scheduler: repeatable %s: record unreadable: %s", repeatable.name, e)
            recorded = None
        on_time = due[0] if now - due[0] <= ON_TIME_S else None
        missed = [t for t in due if t != on_time and (recorded is None or t > recorded)]
        fire = _apply_policy(repeatable.missed, missed, on_time is not None)
        if on_time is not None and (recorded is None or on_time > recorded):
            fire.append(on_time)
        if missed:
            log.info(
                "scheduler: repeatable %s: %d tick(s) missed while no scheduler ran (policy %s)",
                repeatable.name,
                len(missed),
                repeatable.missed.value,
            )
        for tick in sorted(fire):
            job = await self.app.publish(repeatable.prepare(tick))
            if not job.duplicate:
                self.fired += 1
                log.info(
                    "scheduler: repeatable %s fired job %s (tick %s)",
                    repeatable.name,
                    job.id,
                    _iso(tick),
                )
        if fire:
            await control.record_tick(repeatable.name, max(fire))
        return due[0]


def _apply_policy(policy: Missed, missed: list[float], on_time: bool) -> list[float]:
    """The missed ticks to fire; an on-time tick is fired anyway, and is the latest."""
    if not missed or policy is Missed.SKIP:
        return []
    if policy is Missed.ALL:
        return list(missed)
    return [] if on_time else [max(missed)]


def _iso(tick: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tick))


def _one_line(error: BaseException) -> str:
    """An error as one line of text, for a log line."""
    return " ".join(str(error).split()) or type(error).__name__


async def _closed(source: HeldJobs | None) -> None:
    if source is not None:
        with contextlib.suppress(Exception):
            await source.close()
