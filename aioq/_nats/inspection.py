"""`NatsInspection`: queue stats, job records and held jobs read from JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec
from nats.errors import NoRespondersError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from aioq._nats.dead import NatsDead
from aioq._nats.history import retentions
from aioq._nats.run_at import RUN_AT_HEADER, parse_run_at, task_name
from aioq._nats.stream_state import ConsumerState, StreamState
from aioq._nats.streams import gone
from aioq.backend.inspection import HeldEntry, QueueStats
from aioq.naming import Names, validate_queue

__all__ = ["NatsInspection"]

# Records `records_between` reads at once (one direct get each).
_READ_AT_ONCE: Final = 64


class NatsInspection:
    """Reads stream, consumer and bucket state for one app prefix; changes nothing."""

    def __init__(self, js: JetStreamContext, names: Names, dead: NatsDead) -> None:
        self.js = js
        self.names = names
        self._dead = dead
        self._admin = StreamState(js, names)
        self._direct = True

    async def queues(self, known: Iterable[str] = ()) -> list[QueueStats]:
        """Every queue with a consumer, jobs, delayed jobs or dead letters, plus `known`."""
        admin, names = self._admin, self.names
        stream, (held_in, held), dead = await asyncio.gather(
            admin.jobs_stream(),
            admin.per_queue(names.sched_subject("*", "*")),
            self._dead.counts(),
        )
        consumers = {c.name: c for c in stream.consumers if _is_queue(c.name)}
        pulling = [
            c for c in stream.consumers if c.name in consumers or names.level_consumer(c.name)
        ]
        covered = sum(c.pending + c.ack_pending for c in pulling)
        if held_in == names.jobs_stream:
            covered += sum(held.values())
        # Messages no queue consumer accounts for: jobs of queues nobody pulled from yet. Only
        # then is the (per-job) subject list read, since its size grows with the backlog.
        unconsumed: dict[str, int] = {}
        if stream.messages > covered:
            # The queues' own subjects, without their levels' (``<queue>.p.<level>``).
            for pattern in names.job_filters("*"):
                _, queued = await admin.per_queue(pattern)
                for q, n in queued.items():
                    if q not in consumers:
                        unconsumed[q] = unconsumed.get(q, 0) + n
        levels = await self._levels(stream.consumers)
        every = set(consumers) | set(held) | set(dead) | set(unconsumed) | set(known) | set(levels)
        kept = await retentions(self.js, names, every)
        return [
            msgspec.structs.replace(
                _stats(
                    name,
                    consumers.get(name),
                    levels.get(name, _Levels()),
                    unconsumed.get(name, 0),
                    held.get(name, 0),
                    dead.get(name, 0),
                ),
                max_running=_cap(consumers.get(name), levels.get(name)),
                history=kept.get(name),
            )
            for name in sorted(every)
        ]

    async def _levels(self, consumers: list[ConsumerState]) -> dict[str, _Levels]:
        """Per queue, the jobs of its priority levels: stored per level, and their consumers'.

        A level's jobs are counted from its consumer once a worker created it, else from
        the stream (pending).
        """
        names = self.names
        _, stored = await self._admin.subject_counts(f"{names.prefix}.jobs.*.p.*")
        found: dict[str, _Levels] = {}
        for subject, count in stored.items():
            queue = subject.split(".")[2]
            level = names.level_of(subject, queue)
            if level is not None and count:
                found.setdefault(queue, _Levels()).stored[level] = count
        pulled: set[tuple[str, int]] = set()
        for c in consumers:
            owner = names.level_consumer(c.name)
            if owner is None:
                continue
            pulled.add(owner)
            totals = found.setdefault(owner[0], _Levels())
            totals.pending += c.pending
            totals.in_flight += c.ack_pending
            totals.redelivered += c.redelivered
            totals.waiting += c.waiting
            totals.cap = totals.cap or c.max_ack_pending
        for queue, totals in found.items():
            totals.pending += sum(n for lv, n in totals.stored.items() if (queue, lv) not in pulled)
        return found

    async def records(self, after: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """The results bucket's records after stream sequence `after`, one read each."""
        stream, subject = f"KV_{self.names.results_bucket}", f"$KV.{self.names.results_bucket}.>"
        seq = after + 1
        while True:
            try:
                msg = await self.js.get_msg(stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return
            seq = msg.seq or seq
            if msg.data:  # a delete or purge marker has no data
                yield seq, msg.data
            seq += 1

    async def record_span(self) -> tuple[int, int]:
        """The results stream's first sequence and the one after its last."""
        try:
            info = await self.js.stream_info(f"KV_{self.names.results_bucket}")
        except NotFoundError:
            return 1, 1
        return info.state.first_seq or 1, info.state.last_seq + 1

    async def records_between(self, bottom: int, top: int) -> list[tuple[int, bytes]]:
        """The records at sequences [bottom, top), `_READ_AT_ONCE` direct gets at a time.

        A sequence whose record was replaced or deleted answers "not found" at once.
        """
        found: list[tuple[int, bytes]] = []
        for first in range(bottom, top, _READ_AT_ONCE):
            chunk = range(first, min(first + _READ_AT_ONCE, top))
            for got in await asyncio.gather(*(self._record_at(seq) for seq in chunk)):
                if got is not None and got[1]:  # a delete or purge marker has no data
                    found.append(got)
        return found

    async def _record_at(self, seq: int) -> tuple[int, bytes] | None:
        stream = f"KV_{self.names.results_bucket}"
        try:
            msg = await self.js.get_msg(stream, seq=seq, direct=self._direct)
        except NoRespondersError:
            if not self._direct:
                raise
            self._direct = False  # a bucket created without direct gets: ask the stream leader
            return await self._record_at(seq)
        except APIError as e:
            if gone(e):
                return None
            raise
        return seq, msg.data or b""

    async def group_state(self) -> dict[str, bytes]:
        """The limits bucket's group keys: their subjects, then the latest value of each."""
        bucket = self.names.limits_bucket
        stream, root = f"KV_{bucket}", f"$KV.{bucket}."
        try:
            info = await self.js.stream_info(stream, subjects_filter=f"{root}group.>")
        except NotFoundError:
            return {}
        subjects = sorted(info.state.subjects or {})

        async def latest(subject: str) -> bytes:
            try:
                return (await self.js.get_msg(stream, subject=subject)).data or b""
            except NotFoundError:
                return b""

        values = await asyncio.gather(*(latest(s) for s in subjects))
        # A deleted or purged key leaves a marker without data.
        return {s.removeprefix(root): v for s, v in zip(subjects, values, strict=True) if v}

    async def held(self, queue: str | None = None, after: int = 0) -> AsyncIterator[HeldEntry]:
        """The held jobs (of `queue`, or all) after sequence `after`, in stored order."""
        stream, subject = self.names.jobs_stream, self.names.sched_subject(queue or "*")
        seq = after + 1
        while True:
            try:
                msg = await self.js.get_msg(stream, seq=seq, subject=subject, next=True)
            except NotFoundError:
                return
            seq = msg.seq or seq
            tokens = (msg.subject or "").split(".")
            run_at = parse_run_at((msg.headers or {}).get(RUN_AT_HEADER))
            yield HeldEntry(tokens[-2], tokens[-1], seq, run_at, _task_of(msg.data))
            seq += 1


def _task_of(data: bytes | None) -> str | None:
    return task_name(data) if data else None


def _stats(
    name: str,
    consumer: ConsumerState | None,
    level: _Levels,
    unconsumed: int,
    delayed: int,
    dead: int,
) -> QueueStats:
    """One queue's stats: from its consumer (plus its levels'), or from the stream without."""
    if consumer is None:
        return QueueStats(
            name=name,
            pending=unconsumed + level.pending,
            delayed=delayed,
            dead=dead,
            levels=level.stored,
        )
    return QueueStats(
        name=name,
        pending=consumer.pending + level.pending,
        in_flight=consumer.ack_pending + level.in_flight,
        redelivered=consumer.redelivered + level.redelivered,
        waiting_pulls=consumer.waiting + level.waiting,
        delayed=delayed,
        dead=dead,
        paused=consumer.paused,
        paused_until=consumer.paused_until,
        consumer=True,
        levels=level.stored,
    )


@dataclass(slots=True)
class _Levels:
    """The jobs of a queue's priority levels."""

    stored: dict[int, int] = field(default_factory=dict)
    pending: int = 0
    in_flight: int = 0
    redelivered: int = 0
    waiting: int = 0
    #: A level consumer's ``max_ack_pending`` (each level has the queue's cap).
    cap: int | None = None


def _cap(consumer: ConsumerState | None, levels: _Levels | None) -> int | None:
    """The queue's cap: its own consumer's, else a level consumer's."""
    if consumer is not None and consumer.max_ack_pending:
        return consumer.max_ack_pending
    return levels.cap if levels else None


def _is_queue(name: str) -> bool:
    try:
        validate_queue(name)
    except ValueError:
        return False
    return True
