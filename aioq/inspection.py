"""Inspection of an app: queues, workers with liveness, job records, dead letters, schedules.

`Aarq.queues` and `Aarq.workers` are the public entry points; the ``aioq queues``,
``aioq workers`` and ``aioq events`` commands print what these functions return.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Final, Generic, Protocol, TypeVar

import msgspec

from aioq.backend import Broker, EventListener
from aioq.backend.inspection import HeldEntry, QueueStats
from aioq.deadletter import DeadEntry, DeadLetters, dead_entry
from aioq.group_usage import GroupUse, read_groups
from aioq.naming import Names, validate_queue
from aioq.priority import DEFAULT_PRIORITY
from aioq.wire import Event, JobRecord, JobState, WaitingJob, WorkerInfo

if TYPE_CHECKING:
    from aioq.repeatable import Repeatable

__all__ = [
    "DEAD_AFTER_S",
    "MAX_WAITING_COUNTED",
    "STALE_AFTER_S",
    "EventStream",
    "GroupUse",
    "HeldEntry",
    "InspectedApp",
    "QueueStats",
    "ScheduleStatus",
    "WorkerStatus",
    "by_level",
    "delete_queue_consumer",
    "group_usage",
    "list_dead",
    "list_delayed",
    "list_records",
    "queue_stats",
    "schedules",
    "waiting_counts",
    "worker_statuses",
]

log = logging.getLogger("aioq")

#: Heartbeat age after which a worker counts as stale (1.5 default heartbeat intervals).
STALE_AFTER_S: Final = 15.0
#: Heartbeat age after which a worker counts as dead (its record expires at 3 intervals).
DEAD_AFTER_S: Final = 30.0
#: Most waiting jobs read to count them per queue (`QueueStats.waiting`).
MAX_WAITING_COUNTED: Final = 10_000
_waiting_decoder: Final = msgspec.json.Decoder(WaitingJob)


class _QueuedTask(Protocol):
    @property
    def queue(self) -> str:
        """The task's queue."""
        ...


class InspectedApp(Protocol):
    """What the inspection functions need of an app."""

    @property
    def tasks(self) -> Mapping[str, _QueuedTask]:
        """Registered tasks by name."""
        ...

    @property
    def repeatables(self) -> Mapping[str, Repeatable]:
        """Registered repeatables by name."""
        ...

    @property
    def names(self) -> Names:
        """Subjects, streams and buckets of the prefix."""
        ...

    @property
    def dead(self) -> DeadLetters:
        """The dead-letter API."""
        ...

    async def connect(self) -> Broker:
        """The connected broker."""
        ...


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
    #: ``alive``, ``stale`` or ``dead``, from `age` (see `worker_statuses`).
    state: str = "alive"


AppT = TypeVar("AppT", bound=InspectedApp)


def by_level(stats: QueueStats) -> str:
    """A queue's jobs per priority level, highest first: ``p9=3 p5=120 p0=40``.

    Waiting and in-flight jobs; the default level's are those not on another level. Empty
    for a queue whose jobs use no level but the default.
    """
    if not stats.levels:
        return ""
    rest = stats.pending + stats.in_flight - sum(stats.levels.values())
    counts = {
        **stats.levels,
        DEFAULT_PRIORITY: stats.levels.get(DEFAULT_PRIORITY, 0) + max(rest, 0),
    }
    return " ".join(f"p{level}={n}" for level, n in sorted(counts.items(), reverse=True) if n)


async def group_usage(app: InspectedApp) -> list[GroupUse]:
    """Every group with state in `app`'s shared limits: jobs running now, starts in the window."""
    return await read_groups(await app.connect())


async def queue_stats(app: InspectedApp) -> list[QueueStats]:
    """Every queue of `app`'s prefix, sorted by name.

    A queue is listed if it has a consumer, jobs waiting, delayed jobs or dead letters, or if
    one of `app`'s tasks uses it.
    """
    broker = await app.connect()
    waiting = await waiting_counts(broker)
    known = {task.queue for task in app.tasks.values()} | set(waiting)
    return [
        msgspec.structs.replace(stats, waiting=waiting.get(stats.name, 0))
        for stats in await broker.inspection.queues(known)
    ]


async def waiting_counts(broker: Broker, limit: int = MAX_WAITING_COUNTED) -> dict[str, int]:
    """Jobs waiting for their dependencies, per queue (reading at most `limit` of them)."""
    counts: dict[str, int] = {}
    for data in await broker.waiting.values(limit):
        try:
            queue = _waiting_decoder.decode(data).queue
        except msgspec.DecodeError:
            continue
        counts[queue] = counts.get(queue, 0) + 1
    return counts


async def worker_statuses(
    app: InspectedApp, stale_after: float = STALE_AFTER_S, dead_after: float = DEAD_AFTER_S
) -> list[WorkerStatus]:
    """The registered workers of `app`'s prefix with their liveness, sorted by host and pid.

    A worker is ``alive`` while its heartbeat is younger than `stale_after` seconds,
    ``stale`` until `dead_after`, then ``dead`` (its record is about to expire).
    """
    broker = await app.connect()
    decoder = msgspec.json.Decoder(WorkerInfo)
    now = time.time()
    statuses: list[WorkerStatus] = []
    for raw in await broker.workers.list():
        try:
            info = decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            log.debug("skipping an unreadable worker record: %s", e)
            continue
        age = now - info.heartbeat_at
        state = "alive" if age < stale_after else "stale" if age < dead_after else "dead"
        statuses.append(WorkerStatus(info, age, state))
    statuses.sort(key=lambda s: (s.info.hostname, s.info.pid, s.info.id))
    return statuses


async def delete_queue_consumer(app: InspectedApp, queue: str) -> bool:
    """Delete the consumer of `queue` (its jobs stay in the stream); False if it had none.

    A worker still pulling from the queue creates the consumer again: check `worker_statuses`
    first (``aioq queue delete`` does).
    """
    validate_queue(queue)
    broker = await app.connect()
    return await broker.jobs.delete_consumer(queue)


async def list_records(
    app: InspectedApp,
    *,
    queue: str | None = None,
    status: JobState | str | None = None,
    task: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
    scan: int = 1000,
) -> tuple[list[JobRecord], str | None]:
    """One page of job records, oldest write first, filtered by queue, status and task.

    Records are read one at a time and at most `scan` of them per call, so a page never loads
    the whole store. Returns the page and the cursor of the next one (None at the end); pass
    that cursor back to continue. A page may hold fewer than `limit` records when the scan
    bound was reached first: continue with the cursor.
    """
    if limit < 1 or scan < 1:
        raise ValueError(f"limit and scan must be at least 1, not {limit} and {scan}")
    wanted = JobState(status) if status is not None else None
    after = _read_cursor(cursor)
    broker = await app.connect()
    decoder = msgspec.json.Decoder(JobRecord)
    found: list[JobRecord] = []
    scanned = 0
    async for position, raw in broker.inspection.records(after):
        after, scanned = position, scanned + 1
        try:
            record = decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if (
            (queue is None or record.queue == queue)
            and (wanted is None or record.state is wanted)
            and (task is None or record.task == task)
        ):
            found.append(record)
            if len(found) >= limit:
                return found, str(after)
        if scanned >= scan:
            return found, str(after)
    return found, None


async def list_dead(
    app: InspectedApp, queue: str, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[DeadEntry], str | None]:
    """One page of the dead letters of `queue`, oldest first, and the next page's cursor."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    broker = await app.connect()
    entries: list[DeadEntry] = []
    async for message in broker.dead.list(validate_queue(queue), _read_cursor(cursor)):
        if len(entries) >= limit:
            return entries, str(entries[-1].seq)
        entries.append(dead_entry(message))
    return entries, None


class ScheduleStatus(msgspec.Struct, frozen=True, kw_only=True):
    """A repeatable job: when it last fired and when it fires next.

    Attributes:
        name: The repeatable's name.
        task: Its task.
        queue: The queue its jobs go to.
        schedule: Its schedule, described (``every 60s``, ``cron 0 * * * * UTC``).
        last_fire: Unix time of the latest tick recorded as fired, if any.
        next_fire: Unix time of the next tick after now (or after the last fire).
    """

    name: str
    task: str
    queue: str
    schedule: str
    last_fire: float | None
    next_fire: float


async def schedules(app: InspectedApp) -> list[ScheduleStatus]:
    """The app's repeatables with their last and next fire, sorted by name."""
    broker = await app.connect()
    now = broker.clock.time()
    found: list[ScheduleStatus] = []
    for name, repeatable in sorted(app.repeatables.items()):
        last = await broker.control.last_tick(name)
        found.append(
            ScheduleStatus(
                name=name,
                task=repeatable.task.name,
                queue=repeatable.queue,
                schedule=repeatable.schedule.describe(),
                last_fire=last,
                next_fire=repeatable.schedule.next_after(max(now, last or now)),
            )
        )
    return found


async def list_delayed(
    app: InspectedApp, queue: str | None = None, *, cursor: str | None = None, limit: int = 50
) -> tuple[list[HeldEntry], str | None]:
    """One page of the delayed jobs still held (of `queue`, or all), with their due time."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    broker = await app.connect()
    entries: list[HeldEntry] = []
    async for entry in broker.inspection.held(
        validate_queue(queue) if queue else None, _read_cursor(cursor)
    ):
        if len(entries) >= limit:
            return entries, str(entries[-1].seq)
        entries.append(entry)
    return entries, None


def _read_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        value = int(cursor)
    except ValueError:
        raise ValueError(f"invalid cursor {cursor!r}: pass the cursor a listing returned") from None
    if value < 0:
        raise ValueError(f"invalid cursor {cursor!r}: pass the cursor a listing returned")
    return value


class EventStream(Generic[AppT]):
    """Lifecycle events, subscribed on entry: ``async with EventStream(app) as events:``.

    Unlike `Aarq.events`, the subscription exists (and the server knows it) when the block
    starts, so nothing published after that line is missed.
    """

    def __init__(
        self, app: AppT, queue: str | None = None, kinds: Iterable[str] | None = None
    ) -> None:
        self.app = app
        self.queue = validate_queue(queue) if queue else None
        self.kinds = frozenset(kinds) if kinds else None
        self.subject = app.names.event_subject(self.queue or "*", "*")
        self._listener: EventListener | None = None

    async def __aenter__(self) -> EventStream[AppT]:
        broker = await self.app.connect()
        self._listener = await broker.events.listen(self.queue)
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
