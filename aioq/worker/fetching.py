"""Fetching: each queue's pull loop, and the admission of what it fetched.

A pull loop takes slots (shared fairly between the worker's queues, see `Slots`), asks its
queue for that many jobs, and starts them as the rate limits allow. Jobs whose previous
delivery may have crashed a worker run one at a time first (the quarantine lane).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from aioq.backend import Broker, ConsumerGoneError, Delivery, JobSource
from aioq.groups import GroupLimits
from aioq.options import QueueOptions
from aioq.ratelimit import TokenBucket
from aioq.worker.draining import cancel_until_done, hand_back
from aioq.worker.execute import Executor, Previous
from aioq.worker.groups import GroupGate
from aioq.worker.leases import LEASE_RENEW_FRACTION, Lease
from aioq.worker.levels import open_queue
from aioq.worker.limits import SharedLimit, StartGate
from aioq.worker.slots import Slots

__all__ = ["FETCH_TIMEOUT_S", "Fetching"]

log = logging.getLogger("aioq.worker")

# How long a lingering pull waits before it is renewed; bounds how long a lost pull can idle.
FETCH_TIMEOUT_S: Final = 5.0
# Pauses between attempts while a queue cannot be fetched from: doubled up to the cap.
_OUTAGE_RETRY_FIRST_S: Final = 0.1
_OUTAGE_RETRY_CAP_S: Final = 2.0
# How much of each payload a debug log line shows.
_DEBUG_PAYLOAD_BYTES: Final = 2000


class Fetching:
    """Pulls the jobs of a worker's queues and starts them on its executor.

    Args:
        executor: Runs each job started.
        slots: The worker's job slots.
        queue_options: The options of a queue, by name.
        max_batch: Most jobs fetched from one queue at once.
        stopping: Set once the worker stops: jobs fetched then are handed straight back.
    """

    def __init__(
        self,
        executor: Executor,
        slots: Slots,
        queue_options: Callable[[str], QueueOptions],
        max_batch: int,
        stopping: asyncio.Event,
    ) -> None:
        self.executor = executor
        self.slots = slots
        self.queue_options = queue_options
        self.max_batch = max_batch
        self.stopping = stopping
        #: The jobs running now.
        self.jobs: set[asyncio.Task[None]] = set()
        #: Each queue's start gate (its rate limits).
        self.gates: dict[str, StartGate] = {}
        #: The gate of group limits; None when the app has none.
        self.groups: GroupGate | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        # Jobs that may have crashed their last worker, run one at a time (see _screen).
        self._lane: deque[_Held] = deque()
        self._lane_runner: asyncio.Task[None] | None = None
        self._lane_done = asyncio.Event()
        self._lane_done.set()

    def open_gates(
        self,
        broker: Broker,
        queues: Sequence[str],
        own: TokenBucket,
        groups: GroupLimits | None = None,
    ) -> None:
        """Build each queue's start gate, and the gate of the group limits if there are any.

        A queue's gate holds the worker's own limit and the queue's shared one.
        """
        if groups:
            self.groups = GroupGate(groups, broker)
        for queue in queues:
            options = self.queue_options(queue)
            shared = (
                SharedLimit(
                    broker.control,
                    queue,
                    options.rate_limit,
                    options.rate_interval,
                    clock=broker.clock.time,
                )
                if options.rate_limit is not None
                else None
            )
            self.gates[queue] = StartGate(own, shared, sleep=broker.clock.sleep)

    async def stop_lane(self) -> None:
        """Stop running quarantined jobs; those not started go back to their queue."""
        if self._lane_runner is not None:
            await cancel_until_done([self._lane_runner])

    async def pull(self, broker: Broker, queue: str, source: JobSource) -> None:
        """Fetch and start the jobs of `queue` until cancelled or the worker stops."""
        period = self.queue_options(queue).ack_wait / LEASE_RENEW_FRACTION
        gate = self.gates.get(queue)
        slots = self.slots
        outage = _Outage(queue)
        try:
            while True:
                # While suspects of a crash run one at a time, fetch nothing more.
                await self._lane_done.wait()
                # Under a rate limit, wait for a start to be allowed before taking slots,
                # so that a throttled queue never holds slots another queue could use.
                most = self.max_batch
                if gate is not None and gate.limited:
                    most = await gate.room(most)
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
                except Exception as e:
                    slots.release(taken, queue)
                    source = await self._recover(broker, queue, source, e, outage)
                    continue
                if outage.since is not None:
                    outage.ended()
                slots.release(taken - len(deliveries), queue)
                if self.stopping.is_set():
                    # Fetched as the stop began: hand them straight back to another worker.
                    await hand_back(deliveries)
                    slots.release(len(deliveries), queue)
                    return
                if not self._lane_done.is_set() or any(d.delivered > 1 for d in deliveries):
                    deliveries = await self._screen(deliveries, queue, period)
                if gate is not None and gate.limited and deliveries:
                    await self._admit(gate, deliveries, queue, period)
                else:
                    for delivery in deliveries:
                        self.start(delivery, queue, period)
        finally:
            await source.close()

    def start(
        self, delivery: Delivery, queue: str, period: float, previous: Previous | None = None
    ) -> asyncio.Task[None]:
        """Run `delivery` on the executor, in a slot already taken."""
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "queue %s: received seq=%d attempt=%d (%d bytes): %r",
                queue,
                delivery.seq,
                delivery.attempt,
                len(delivery.data),
                delivery.data[:_DEBUG_PAYLOAD_BYTES],
            )
        if self.groups is None:
            job = asyncio.create_task(self.executor.run(delivery, queue, period, previous))
        else:
            job = asyncio.create_task(self._run_in_group(delivery, queue, period, previous))
        self.jobs.add(job)
        self._idle.clear()
        job.add_done_callback(lambda done: self._finished(done, queue))
        return job

    async def _run_in_group(
        self, delivery: Delivery, queue: str, period: float, previous: Previous | None
    ) -> None:
        """Run `delivery` if its group has room (else it went back), then give the room back."""
        assert self.groups is not None
        ack_wait = self.queue_options(queue).ack_wait
        try:
            admitted, group = await self.groups.admit(delivery, queue, ack_wait)
        except asyncio.CancelledError:
            await hand_back([delivery])  # the worker stops: another worker runs it
            raise
        except Exception:
            log.exception("queue %s: cannot check the group limits of seq=%d", queue, delivery.seq)
            return  # the job comes back after its lease
        if not admitted:
            return
        try:
            await self.executor.run(delivery, queue, period, previous)
        finally:
            if group is not None:
                await self.groups.release(group, delivery.seq)

    def _finished(self, job: asyncio.Task[None], queue: str) -> None:
        self.jobs.discard(job)
        if not self.jobs:
            self._idle.set()
        self.slots.release(1, queue)

    async def _recover(
        self, broker: Broker, queue: str, source: JobSource, error: Exception, outage: _Outage
    ) -> JobSource:
        """After a failed fetch: wait the outage's pause, re-creating a consumer that is gone."""
        pause = outage.failed(error)
        if not isinstance(error, ConsumerGoneError):
            await asyncio.sleep(pause)
            return source
        with contextlib.suppress(Exception):
            await source.close()
        while True:
            await asyncio.sleep(pause)
            try:
                return await open_queue(broker.jobs, queue, self.queue_options(queue))
            except Exception as e:
                pause = outage.failed(e)

    async def _slots_for(self, deliveries: Sequence[Delivery], queue: str, period: float) -> int:
        """Wait for a slot for each of `deliveries`, keeping their leases meanwhile."""
        leases = self.executor.leases
        waiting = [Lease.of(d, period) for d in deliveries]
        leases.update(waiting)
        taken = 0
        try:
            while taken < len(deliveries):
                taken += await self.slots.acquire(len(deliveries) - taken, queue)
        except asyncio.CancelledError:
            self.slots.release(taken, queue)
            await hand_back(deliveries)
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
        again = [d for d in deliveries if d.delivered > 1]
        found = await asyncio.gather(*(self.executor.previous(d) for d in again))
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
        if not self._lane:
            log.info(
                "worker %s: job seq=%d was delivered again after its attempt left no outcome; "
                "running such jobs one at a time",
                self.executor.worker_id,
                held.delivery.seq,
            )
        self.executor.leases.add(held.lease)
        self._lane.append(held)
        self._lane_done.clear()
        if self._lane_runner is None or self._lane_runner.done():
            self._lane_runner = asyncio.create_task(self._run_lane(), name="aioq-quarantine")

    async def _run_lane(self) -> None:
        """Run the quarantined jobs one at a time, each with no other job running."""
        leases = self.executor.leases
        try:
            while self._lane:
                await self._idle.wait()
                held = self._lane.popleft()
                leases.discard(held.lease)
                job = self.start(held.delivery, held.queue, held.period, held.previous)
                await asyncio.wait([job])
        except asyncio.CancelledError:
            # The worker is stopping: hand the jobs not started back to another worker.
            waiting, self._lane = list(self._lane), deque()
            for held in waiting:
                leases.discard(held.lease)
                self.slots.release(1, held.queue)
            await hand_back([held.delivery for held in waiting])
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
        leases = self.executor.leases
        waiting = [Lease.of(d, period) for d in deliveries]
        leases.update(waiting)
        try:
            while waiting:
                for _ in range(await gate.take(len(waiting))):
                    lease = waiting.pop(0)
                    leases.discard(lease)
                    self.start(lease.delivery, queue, period)
        except asyncio.CancelledError:
            # The worker is stopping: hand the unstarted jobs back to another worker.
            await hand_back([lease.delivery for lease in waiting])
            self.slots.release(len(waiting), queue)
            raise
        finally:
            for lease in waiting:
                leases.discard(lease)


class _Outage:
    """A queue that cannot be fetched from: its retry pause, one warning, one line at the end."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        #: Monotonic start of the outage; None while fetching works.
        self.since: float | None = None
        self._pause = _OUTAGE_RETRY_FIRST_S

    def failed(self, error: Exception) -> float:
        """Note a failed attempt; returns the pause before the next one."""
        if self.since is None:
            self.since = time.monotonic()
            what = (
                "its consumer is gone, re-creating it"
                if isinstance(error, ConsumerGoneError)
                else "cannot fetch jobs"
            )
            log.warning(
                "queue %s: %s (%s); retrying every %gs at most until it works",
                self.queue,
                what,
                _one_line(error),
                _OUTAGE_RETRY_CAP_S,
            )
        else:
            log.debug("queue %s: still cannot fetch jobs: %s", self.queue, _one_line(error))
        pause = self._pause
        self._pause = min(pause * 2, _OUTAGE_RETRY_CAP_S)
        return pause

    def ended(self) -> None:
        """Note a fetch that worked: the outage is over."""
        if self.since is not None:
            log.warning(
                "queue %s: fetching jobs again after %.1fs",
                self.queue,
                time.monotonic() - self.since,
            )
        self.since = None
        self._pause = _OUTAGE_RETRY_FIRST_S


@dataclass(slots=True, eq=False)
class _Held:
    """A job set aside to run alone, and what its start needs."""

    delivery: Delivery
    queue: str
    period: float
    previous: Previous | None
    lease: Lease = field(init=False)

    def __post_init__(self) -> None:
        self.lease = Lease.of(self.delivery, self.period)


def _one_line(error: BaseException) -> str:
    """An error as one line of text, for a log line."""
    return " ".join(str(error).split()) or type(error).__name__


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
        await hand_back(deliveries)
        raise
