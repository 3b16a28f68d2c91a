"""The in-memory jobs stream: messages, deduplication, and JetStream-like pull consumers.

Times follow JetStream as aioq relies on it, split between two clocks. On the broker's
clock (a `FakeClock` in tests): store times, the dedupe window, ``nak`` delays and pauses.
On the real clock: the lease (``ack_wait``) of a delivered message, which the worker keeps
alive from its own real-time loop, so that moving fake time never expires a running job.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from aioq.clock import Clock, SystemClock
from aioq.priority import DEFAULT_PRIORITY
from aioq.testing.clock import FakeClock

__all__ = ["Consumer", "DedupeWindow", "JobsStream", "Message", "Signal", "after"]

# Timers on a real clock may fire a hair early; this margin makes the due check succeed.
_TIMER_MARGIN_S: Final = 0.001
# The lease of a held message in a scheduler's hands (as `aioq._nats.held`).
HELD_ACK_WAIT_S: Final = 10.0

_background: set[asyncio.Task[None]] = set()


def after(clock: Clock, delay: float, callback: Callable[[], None]) -> None:
    """Call `callback()` once `delay` seconds have passed on `clock`."""
    if isinstance(clock, FakeClock):
        clock.call_later(delay, callback)
        return
    loop = asyncio.get_running_loop()
    if isinstance(clock, SystemClock):
        loop.call_later(max(0.0, delay) + _TIMER_MARGIN_S, callback)
        return

    async def later() -> None:
        await clock.sleep(delay)
        callback()

    task = loop.create_task(later())
    _background.add(task)
    task.add_done_callback(_background.discard)


def after_real(delay: float, callback: Callable[[], None]) -> None:
    """Call `callback()` once `delay` real seconds have passed."""
    asyncio.get_running_loop().call_later(delay + _TIMER_MARGIN_S, callback)


class Signal:
    """Wakes all its current waiters at once."""

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []

    def fire(self) -> None:
        """Wake every waiter."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done() and not waiter.get_loop().is_closed():
                waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Return at the next `fire`, or after `timeout` real seconds."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(max(0.0, timeout)):
                await waiter
        except TimeoutError:
            pass
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)


Headers = Mapping[str, str] | None


@dataclass(eq=False, slots=True)
class Message:
    """A stored message: a job on its queue, or a delayed job held for the schedulers."""

    seq: int
    queue: str
    job_id: str
    data: bytes
    msg_id: str | None
    stored_at: float
    #: Held messages: when the job may start (broker clock, unix seconds).
    run_at: float | None = None
    #: Deliveries so far; the `attempt` of the latest.
    deliveries: int = 0
    #: Real monotonic end of the lease of the latest delivery, while it is out.
    lease_until: float | None = None
    #: Broker-clock monotonic time of a redelivery asked for by a nak.
    redeliver_at: float | None = None
    #: Headers given at the publish (a trace context), kept when a held job is released.
    headers: Headers = None

    def redeliverable(self, real: float, clock: float) -> bool:
        """Delivered before, and due again: nak'd and its delay is over, or its lease ran out."""
        if self.redeliver_at is not None:
            return self.redeliver_at <= clock
        return self.lease_until is not None and self.lease_until <= real


class Consumer:
    """A durable pull consumer shared by its pullers: delivery counts, leases, naks, pauses.

    Like JetStream's: redeliveries go before new messages, and none but redeliveries is
    delivered while `max_ack_pending` messages are out (a nak'd message is out until it is
    delivered again and settled).
    """

    def __init__(self, clock: Clock, ack_wait: float, max_ack_pending: int = -1) -> None:
        self.clock = clock
        self.ack_wait = ack_wait
        self.max_ack_pending = max_ack_pending
        #: True once a puller created it (`Broker.open_source`); a pause needs it.
        self.created = False
        #: Broker-clock unix time the pause ends, while paused.
        self.paused_until: float | None = None
        self.messages: dict[int, Message] = {}
        self.changed = Signal()

    def add(self, message: Message) -> None:
        """Store a message; it can be delivered at once."""
        self.messages[message.seq] = message
        self.changed.fire()

    def remove(self, message: Message) -> bool:
        """Drop `message` (acked, termed or purged); False if it was gone already."""
        if self.messages.get(message.seq) is not message:
            return False
        del self.messages[message.seq]
        if message.deliveries:
            self.changed.fire()  # room under max_ack_pending
        return True

    def paused(self) -> bool:
        """Whether a pause holds its deliveries now."""
        if self.paused_until is None:
            return False
        if self.paused_until > self.clock.time():
            return True
        self.paused_until = None
        return False

    def out(self) -> int:
        """Messages delivered and not settled (JetStream's ack pending)."""
        return sum(1 for m in self.messages.values() if m.deliveries)

    def take(self, count: int) -> list[Message]:
        """Deliver up to `count` messages that are available now."""
        if count <= 0 or self.paused():
            return []
        real, clock = time.monotonic(), self.clock.monotonic()
        taken = [m for m in self.messages.values() if m.deliveries and m.redeliverable(real, clock)]
        del taken[count:]
        if len(taken) < count:
            out = self.out()
            for message in self.messages.values():
                if len(taken) >= count or (0 < self.max_ack_pending <= out):
                    break
                if not message.deliveries:
                    taken.append(message)
                    out += 1
        for message in taken:
            message.deliveries += 1
            message.redeliver_at = None
            message.lease_until = real + self.ack_wait
        if taken:
            after_real(self.ack_wait, self.changed.fire)
        return taken

    async def fetch(self, count: int, timeout: float) -> list[Message]:
        """Deliver up to `count` messages, waiting up to `timeout` real seconds for one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            taken = self.take(count)
            remaining = deadline - loop.time()
            if taken or remaining <= 0:
                return taken
            await self.changed.wait(remaining)

    def current(self, message: Message, attempt: int) -> bool:
        """Whether delivery `attempt` of `message` is its latest and it is still stored."""
        return message.deliveries == attempt and self.messages.get(message.seq) is message

    def nak(self, message: Message, attempt: int, delay: float | None) -> None:
        """Deliver again, after `delay` seconds on the broker clock if given."""
        if not self.current(message, attempt):
            return
        message.lease_until = None
        message.redeliver_at = self.clock.monotonic() + max(0.0, delay or 0.0)
        if delay and delay > 0:
            after(self.clock, delay, self.changed.fire)
        else:
            self.changed.fire()

    def extend(self, message: Message, attempt: int) -> None:
        """Reset the lease of the delivery (``in_progress``)."""
        if self.current(message, attempt) and message.lease_until is not None:
            message.lease_until = time.monotonic() + self.ack_wait
            after_real(self.ack_wait, self.changed.fire)

    def pause(self, until: float, *, wake: bool = True) -> None:
        """Deliver nothing until broker-clock time `until` (woken then, if `wake`)."""
        self.paused_until = until
        if wake:
            after(self.clock, until - self.clock.time(), self.changed.fire)

    def resume(self) -> None:
        """End a pause at once."""
        self.paused_until = None
        self.changed.fire()


class DedupeWindow:
    """The message ids stored within the last `window` seconds (broker clock)."""

    def __init__(self, clock: Clock, window: float) -> None:
        self.clock = clock
        self.window = window
        self._ids: dict[str, float] = {}

    def seen(self, msg_id: str) -> bool:
        """Whether `msg_id` was stored within the window; records it if not."""
        now = self.clock.time()
        for seen, at in list(self._ids.items()):
            if at + self.window > now:
                break
            del self._ids[seen]
        if msg_id in self._ids:
            return True
        self._ids[msg_id] = now
        return False


class JobsStream:
    """Every queue's messages and the held ones, with JetStream's dedupe by message id."""

    def __init__(self, clock: Clock, duplicate_window: float) -> None:
        self.clock = clock
        self.duplicate_window = duplicate_window
        self.queues: dict[str, Consumer] = {}
        #: The consumers of the priority levels' own subjects, by queue and level.
        self.levels: dict[tuple[str, int], Consumer] = {}
        #: What hears the first job of a level: per queue and level, the callbacks.
        self.level_watchers: dict[tuple[str, int], set[Callable[[int], None]]] = {}
        #: The schedulers' consumer of the held (delayed) jobs.
        self.held = Consumer(clock, HELD_ACK_WAIT_S)
        self._seq = 0
        self._ids = DedupeWindow(clock, duplicate_window)

    def queue(self, name: str) -> Consumer:
        """The consumer of queue `name`, holding its messages (made on first use)."""
        consumer = self.queues.get(name)
        if consumer is None:
            consumer = self.queues[name] = Consumer(self.clock, 30.0)
        return consumer

    def level(self, queue: str, level: int) -> Consumer:
        """The consumer of priority `level`'s subject of `queue` (made on first use)."""
        consumer = self.levels.get((queue, level))
        if consumer is None:
            consumer = self.levels[(queue, level)] = Consumer(self.clock, 30.0)
            own = self.queues.get(queue)
            if own is not None and own.paused():  # a paused queue holds its new levels too
                assert own.paused_until is not None
                consumer.pause(own.paused_until, wake=False)
        return consumer

    def consumers_of(self, queue: str) -> list[Consumer]:
        """The consumers holding jobs of `queue`: its own, then its levels'."""
        own = [self.queues[queue]] if queue in self.queues else []
        return own + [c for (q, _), c in self.levels.items() if q == queue]

    def duplicate(self, msg_id: str) -> bool:
        """Whether `msg_id` was stored within the dedupe window; records it if not."""
        return self._ids.seen(msg_id)

    def _message(
        self, queue: str, job_id: str, data: bytes, msg_id: str, headers: Headers
    ) -> Message:
        self._seq += 1
        message = Message(self._seq, queue, job_id, data, msg_id, self.clock.time())
        message.headers = headers
        return message

    def publish(
        self,
        queue: str,
        job_id: str,
        data: bytes,
        msg_id: str,
        headers: Headers = None,
        priority: int = DEFAULT_PRIORITY,
    ) -> bool:
        """Store a job on `queue` at `priority`; True (nothing stored) if `msg_id` is a duplicate.

        Like the NATS backend, default-level jobs go to the queue's own consumer, the others
        to their level's.
        """
        if self.duplicate(msg_id):
            return True
        message = self._message(queue, job_id, data, msg_id, headers)
        if priority == DEFAULT_PRIORITY:
            self.queue(queue).add(message)
            return False
        self.level(queue, priority).add(message)
        for heard in list(self.level_watchers.get((queue, priority), ())):
            heard(priority)
        return False

    def hold(
        self,
        queue: str,
        job_id: str,
        data: bytes,
        msg_id: str,
        run_at: float,
        headers: Headers = None,
    ) -> bool:
        """Store a delayed job for the schedulers; True if `msg_id` is a duplicate."""
        if self.duplicate(msg_id):
            return True
        message = self._message(queue, job_id, data, msg_id, headers)
        message.run_at = run_at
        self.held.add(message)
        return False

    def find(self, job_id: str, queue: str | None, *, held: bool = False) -> str | None:
        """The queue holding job `job_id` (among the held jobs if `held`), or None."""
        for message in self.matching(job_id, queue, held):
            return message.queue
        return None

    def remove(self, job_id: str, queue: str, *, held: bool = False) -> bool:
        """Drop every message of job `job_id` on `queue`; False if there was none."""
        found = self.matching(job_id, queue, held)
        consumers = [self.held] if held else self.consumers_of(queue)
        for message in found:
            for consumer in consumers:
                consumer.remove(message)
        return bool(found)

    def matching(self, job_id: str, queue: str | None, held: bool) -> list[Message]:
        """The stored messages of job `job_id` (on `queue` if given; held ones if `held`)."""
        if held:
            consumers = [self.held]
        elif queue is None:
            consumers = [*self.queues.values(), *self.levels.values()]
        else:
            consumers = self.consumers_of(queue)
        return [
            m
            for consumer in consumers
            for m in consumer.messages.values()
            if m.job_id == job_id and (queue is None or m.queue == queue)
        ]
