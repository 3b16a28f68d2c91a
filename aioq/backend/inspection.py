"""Read-only views of the broker's state, for the inspection API and the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Protocol

import msgspec

__all__ = ["HeldEntry", "Inspection", "QueueStats"]


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
        paused: True while the queue is paused.
        paused_until: Unix time the pause ends, when paused.
        consumer: True if the queue has its consumer, i.e. a worker has pulled from it once.
            Without one, `pending` is counted from the stream and the other counts are 0.
        levels: Jobs stored per priority level other than the default 5 (waiting, running
            or between attempts), for the levels that have any; their jobs are counted in
            the totals above too.
        waiting: Jobs of the queue waiting for their dependencies (``depends_on``), held in
            the waiting bucket until they may be queued.
        max_running: The cap the server holds on the queue's jobs delivered and not yet
            settled (its consumer's ``max_ack_pending``, ``app.queue(max_running=...)``);
            None if uncapped or no worker created the consumer yet. Each priority level's
            consumer has the same cap of its own: with ``k`` levels in use up to ``k`` times it.
        history: Seconds the server keeps a succeeded job's message for replay
            (``app.queue(history=...)``), read from the queue's latest kept message; None
            if the queue keeps none now.
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
    levels: dict[int, int] = msgspec.field(default_factory=dict)
    waiting: int = 0
    max_running: int | None = None
    history: float | None = None


class HeldEntry(msgspec.Struct, frozen=True):
    """One delayed job still held: where it goes, and when it is due."""

    queue: str
    job_id: str
    #: Broker sequence of the held message (a cursor for listing).
    seq: int
    #: Unix time the job is due; None if its message carries no valid time.
    run_at: float | None
    task: str | None = None


class Inspection(Protocol):
    """What an operator (or a dashboard) reads; changes nothing."""

    async def queues(self, known: Iterable[str] = ()) -> list[QueueStats]:
        """Every queue with a consumer, jobs, delayed jobs or dead letters, plus `known`."""
        ...

    def records(self, after: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """Every job record stored after position `after`, oldest write first, lazily.

        Yields ``(position, record)``; a record rewritten later moves to its new position.
        """
        ...

    async def record_span(self) -> tuple[int, int]:
        """Positions of the job records: ``(first, after last)``; ``(1, 1)`` if none yet."""
        ...

    async def records_between(self, bottom: int, top: int) -> list[tuple[int, bytes]]:
        """The records whose latest write is at a position in ``[bottom, top)``, oldest first.

        Costs one read per position (a rewritten or deleted record leaves a gap).
        """
        ...

    async def group_state(self) -> dict[str, bytes]:
        """The group keys of the limits bucket (``group.<group>.running``, ``.rate``), by key."""
        ...

    def held(self, queue: str | None = None, after: int = 0) -> AsyncIterator[HeldEntry]:
        """The delayed jobs still held (of `queue`, or all) after sequence `after`, lazily."""
        ...
