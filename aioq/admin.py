"""Operational views of an app: its queues, its live workers, and its events as they happen.

`Aarq.queues` and `Aarq.workers` are the public entry points; the ``aioq queues``,
``aioq workers`` and ``aioq events`` commands print what these functions return.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING

import msgspec
from nats.js.errors import NotFoundError

from aioq._nats.admin import NatsAdmin
from aioq._nats.broker import NatsBroker
from aioq.errors import BrokerError
from aioq.naming import validate_queue
from aioq.transport import EventListener
from aioq.wire import Event, WorkerInfo

if TYPE_CHECKING:
    from aioq.app import Aarq

__all__ = [
    "EventStream",
    "QueueStats",
    "WorkerStatus",
    "delete_queue_consumer",
    "queue_stats",
    "worker_statuses",
]

log = logging.getLogger("aioq")


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    """The state of one queue, from its consumer, the jobs stream and the dead letters.

    Attributes:
        name: The queue.
        pending: Jobs waiting to be delivered to a worker.
        in_flight: Jobs delivered and not yet settled: running, or waiting out a retry delay
            (the consumer's ack-pending count).
        redelivered: Of those, jobs delivered more than once (retries, expired leases).
        waiting_pulls: Pull requests of idle workers waiting for a job.
        delayed: Delayed jobs held until their time (on ``<prefix>.sched.<queue>.*``).
        dead: Dead letters of the queue.
        paused: True while the server holds the queue's consumer paused.
        paused_until: Unix time the pause ends, when paused.
        consumer: True if the queue has its consumer, i.e. a worker has pulled from it once.
            Without one, `pending` is counted from the stream and the other counts are 0.
    """

    name: str
    pending: int = 0
    in_flight: int = 0
    redelivered: int = 0
    waiting_pulls: int = 0
    delayed: int = 0
    dead: int = 0
    paused: bool = False
    paused_until: float | None = None
    consumer: bool = False


class WorkerStatus(msgspec.Struct, frozen=True):
    """A live worker: its last heartbeat, and how long ago that was.

    Attributes:
        info: The heartbeat record the worker wrote.
        age: Seconds since its heartbeat (by this machine's clock; can be slightly negative
            when clocks differ). A worker beats every ``heartbeat_interval`` (10 s default),
            and its key disappears three intervals after the last one.
    """

    info: WorkerInfo
    age: float


async def queue_stats(app: Aarq) -> list[QueueStats]:
    """Every queue of `app`'s prefix, sorted by name.

    A queue is listed if it has a consumer on the jobs stream, jobs waiting, delayed jobs or
    dead letters, or if one of `app`'s tasks uses it.
    """
    admin = NatsAdmin((await _nats_broker(app, "queues")).js, app.names)
    stream, (held_in, held), dead = await asyncio.gather(
        admin.jobs_stream(),
        admin.per_queue(app.names.sched_subject("*", "*")),
        app.dead.counts(),
    )
    consumers = {c.name: c for c in stream.consumers if _is_queue(c.name)}
    covered = sum(c.pending + c.ack_pending for c in consumers.values())
    if held_in == app.names.jobs_stream:
        covered += sum(held.values())
    # Messages no queue consumer accounts for: jobs of queues nobody pulled from yet. Only
    # then is the (per-job) subject list read, since its size grows with the backlog.
    unconsumed: dict[str, int] = {}
    if stream.messages > covered:
        _, queued = await admin.per_queue(app.names.jobs_wildcard)
        unconsumed = {q: n for q, n in queued.items() if q not in consumers}
    names = set(consumers) | set(held) | set(dead) | set(unconsumed)
    names |= {task.queue for task in app.tasks.values()}
    found: list[QueueStats] = []
    for name in sorted(names):
        delayed, dead_count = held.get(name, 0), dead.get(name, 0)
        consumer = consumers.get(name)
        if consumer is None:
            pending = unconsumed.get(name, 0)
            found.append(QueueStats(name=name, pending=pending, delayed=delayed, dead=dead_count))
            continue
        found.append(
            QueueStats(
                name=name,
                pending=consumer.pending,
                in_flight=consumer.ack_pending,
                redelivered=consumer.redelivered,
                waiting_pulls=consumer.waiting,
                delayed=delayed,
                dead=dead_count,
                paused=consumer.paused,
                paused_until=consumer.paused_until,
                consumer=True,
            )
        )
    return found


async def worker_statuses(app: Aarq) -> list[WorkerStatus]:
    """The live workers of `app`'s prefix, from the workers bucket, sorted by host and pid."""
    broker = await _nats_broker(app, "workers")
    records = await NatsAdmin(broker.js, app.names).worker_records()
    decoder = msgspec.json.Decoder(WorkerInfo)
    now = time.time()
    statuses: list[WorkerStatus] = []
    for raw in records:
        try:
            info = decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.debug("skipping an unreadable worker record: %s", e)
            continue
        statuses.append(WorkerStatus(info, now - info.heartbeat_at))
    statuses.sort(key=lambda s: (s.info.hostname, s.info.pid, s.info.id))
    return statuses


async def delete_queue_consumer(app: Aarq, queue: str) -> bool:
    """Delete the consumer of `queue` (its jobs stay in the stream); False if it had none.

    A worker still pulling from the queue creates the consumer again: check `worker_statuses`
    first (``aioq queue delete`` does).
    """
    validate_queue(queue)
    broker = await _nats_broker(app, "delete_queue_consumer")
    try:
        await broker.js.delete_consumer(app.names.jobs_stream, app.names.consumer(queue))
    except NotFoundError:
        return False
    return True


class EventStream:
    """Lifecycle events, subscribed on entry: ``async with EventStream(app) as events:``.

    Unlike `Aarq.events`, the subscription exists (and the server knows it) when the block
    starts, so nothing published after that line is missed.
    """

    def __init__(
        self, app: Aarq, queue: str | None = None, kinds: Iterable[str] | None = None
    ) -> None:
        self.app = app
        self.queue = validate_queue(queue) if queue else None
        self.kinds = frozenset(kinds) if kinds else None
        self.subject = app.names.event_subject(self.queue or "*", "*")
        self._listener: EventListener | None = None

    async def __aenter__(self) -> EventStream:
        broker = await self.app.connect()
        self._listener = await broker.store.listen_events(self.queue)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()

    async def __aiter__(self) -> AsyncIterator[Event]:
        if self._listener is None:
            raise RuntimeError("use the EventStream in `async with` first")
        decoder = msgspec.json.Decoder(Event)
        async for data in self._listener.messages():
            try:
                event = decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue
            if self.kinds is None or event.kind in self.kinds:
                yield event


async def _nats_broker(app: Aarq, listing: str) -> NatsBroker:
    """The app's broker, if it is NATS: the admin listings read JetStream's own state."""
    broker = await app.connect()
    if not isinstance(broker, NatsBroker):
        raise BrokerError(
            f"app.{listing}() reads JetStream stream, consumer and bucket state, so it needs "
            f"the NATS broker; this app runs on {type(broker).__name__}"
        )
    return broker


def _is_queue(name: str) -> bool:
    try:
        validate_queue(name)
    except ValueError:
        return False
    return True
