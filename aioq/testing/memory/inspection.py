"""`MemoryInspection`: queue stats, job records and held jobs of the memory broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import msgspec

from aioq.backend.inspection import HeldEntry, QueueStats
from aioq.testing.memory._stream import JobsStream
from aioq.testing.memory.control import MemoryControl
from aioq.testing.memory.dead import MemoryDead
from aioq.testing.memory.history import MemoryHistory
from aioq.testing.memory.records import MemoryRecords

__all__ = ["MemoryInspection"]


class _TaskName(msgspec.Struct):
    task: str | None = None


_task_decoder = msgspec.json.Decoder(_TaskName)


class MemoryInspection:
    """Reads the memory broker's state as `aioq._nats.NatsInspection` reads JetStream's."""

    def __init__(
        self,
        stream: JobsStream,
        records: MemoryRecords,
        dead: MemoryDead,
        history: MemoryHistory,
        control: MemoryControl,
    ) -> None:
        self._control = control
        self._stream = stream
        self._records = records
        self._dead = dead
        self._history = history

    async def queues(self, known: Iterable[str] = ()) -> list[QueueStats]:
        """Every queue with a consumer, jobs, delayed jobs or dead letters, plus `known`."""
        stream = self._stream
        dead = await self._dead.counts()
        held: dict[str, int] = {}
        for message in stream.held.messages.values():
            held[message.queue] = held.get(message.queue, 0) + 1
        queues = {name for name, c in stream.queues.items() if c.created or c.messages}
        queues |= {name for (name, _), c in stream.levels.items() if c.messages}
        found: list[QueueStats] = []
        for name in sorted(queues | set(held) | set(dead) | set(known)):
            delayed, dead_count = held.get(name, 0), dead.get(name, 0)
            levels = {
                lv: len(c.messages)
                for (q, lv), c in stream.levels.items()
                if q == name and c.messages
            }
            consumer = stream.queues.get(name)
            messages = [m for c in stream.consumers_of(name) for m in c.messages.values()]
            if consumer is None or not consumer.created:
                found.append(
                    QueueStats(
                        name=name,
                        pending=len(messages),
                        delayed=delayed,
                        dead=dead_count,
                        levels=levels,
                        max_running=_cap(stream, name),
                        history=self._history.retention(name),
                    )
                )
                continue
            paused = consumer.paused()
            found.append(
                QueueStats(
                    name=name,
                    pending=sum(1 for m in messages if not m.deliveries),
                    in_flight=sum(1 for m in messages if m.deliveries),
                    redelivered=sum(1 for m in messages if m.deliveries > 1),
                    delayed=delayed,
                    dead=dead_count,
                    paused=paused,
                    paused_until=consumer.paused_until if paused else None,
                    consumer=True,
                    levels=levels,
                    max_running=_cap(stream, name),
                    history=self._history.retention(name),
                )
            )
        return found

    async def records(self, after: int = 0) -> AsyncIterator[tuple[int, bytes]]:
        """The job records written after revision `after`, oldest write first."""
        async for found in self._current(after + 1, self._records.revision + 1):
            yield found

    async def record_span(self) -> tuple[int, int]:
        """The first revision and the one after the latest."""
        return 1, self._records.revision + 1

    async def records_between(self, bottom: int, top: int) -> list[tuple[int, bytes]]:
        """The records whose latest write is at a revision in [bottom, top), oldest first."""
        return [found async for found in self._current(bottom, top)]

    async def _current(self, bottom: int, top: int) -> AsyncIterator[tuple[int, bytes]]:
        records = self._records
        later = sorted(
            (r.revision, job_id)
            for job_id, r in records.stored.items()
            if bottom <= r.revision < top
        )
        for revision, job_id in later:
            data = await records.get(job_id)  # None once kept past `keep_result`
            current = records.stored.get(job_id)
            if data is not None and current is not None and current.revision == revision:
                yield revision, data

    async def group_state(self) -> dict[str, bytes]:
        """The limits' group keys (``group.<group>.running``, ``.rate``), by key."""
        limits = self._control.limits
        return {k: data for k, (data, _) in sorted(limits.items()) if k.startswith("group.")}

    async def held(self, queue: str | None = None, after: int = 0) -> AsyncIterator[HeldEntry]:
        """The held jobs (of `queue`, or all) after sequence `after`, in stored order."""
        messages = sorted(self._stream.held.messages.values(), key=lambda m: m.seq)
        for m in messages:
            if m.seq > after and (queue is None or m.queue == queue):
                yield HeldEntry(m.queue, m.job_id, m.seq, m.run_at, _task_of(m.data))


def _task_of(data: bytes) -> str | None:
    try:
        return _task_decoder.decode(data).task
    except msgspec.DecodeError:
        return None


def _levels(stream: JobsStream, queue: str) -> dict[int, int]:
    """Jobs stored per priority level of `queue`, for the levels that have any."""
    return {
        lv: len(c.messages) for (q, lv), c in stream.levels.items() if q == queue and c.messages
    }


def _cap(stream: JobsStream, queue: str) -> int | None:
    """The queue's consumer's ``max_ack_pending`` (else a level consumer's); None if uncapped."""
    own = stream.queues.get(queue)
    caps = [own] if own is not None and own.created else []
    caps += [c for (q, _), c in stream.levels.items() if q == queue and c.created]
    found = [c.max_ack_pending for c in caps if c.max_ack_pending > 0]
    return found[0] if found else None
