"""The client side of the in-memory broker: job records, events, aborts and dead letters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from aioq.clock import Clock
from aioq.testing.memory._stream import JobsStream
from aioq.transport import StoredMessage

__all__ = ["MemoryEventListener", "MemoryStore"]

log = logging.getLogger("aioq.testing")

# A results bucket with no retention still needs a bound: records of unfinished jobs.
_DEFAULT_RESULT_TTL_S = 86_400.0

AbortHandler = Callable[[str], Awaitable[None]]


@dataclass(slots=True)
class _Record:
    data: bytes
    stored_at: float
    revision: int


class MemoryEventListener:
    """Events of one queue (or all), from the moment it was opened."""

    def __init__(self, store: MemoryStore, queue: str | None) -> None:
        self.queue = queue
        self._store = store
        self._arrived: asyncio.Queue[bytes] = asyncio.Queue()

    def deliver(self, queue: str, data: bytes) -> None:
        """Take an event published on `queue` if it listens to that queue."""
        if self.queue is None or self.queue == queue:
            self._arrived.put_nowait(data)

    async def messages(self) -> AsyncIterator[bytes]:
        """The encoded `Event` of each event, as it is published."""
        while True:
            yield await self._arrived.get()

    async def close(self) -> None:
        """Stop listening."""
        self._store.listeners.discard(self)


class MemoryStore:
    """Job records (with the results retention), events, aborts and dead letters."""

    def __init__(
        self, clock: Clock, jobs: JobsStream, keep_result: float, duplicate_window: float
    ) -> None:
        self.clock = clock
        self.jobs = jobs
        self.keep_result = keep_result or _DEFAULT_RESULT_TTL_S
        self.duplicate_window = duplicate_window
        self.records: dict[str, _Record] = {}
        self.listeners: set[MemoryEventListener] = set()
        self.abort_handlers: list[AbortHandler] = []
        self.dead: dict[int, StoredMessage] = {}
        self._dead_queue: dict[int, tuple[str, str]] = {}
        self._dead_seq = 0
        self._dead_ids: dict[str, float] = {}
        self._watchers: dict[str, list[asyncio.Queue[bytes | None]]] = {}
        self._revision = 0

    # -- records ---------------------------------------------------------------------------

    async def put_record(self, job_id: str, data: bytes) -> None:
        """Store a job record."""
        self._revision += 1
        self.records[job_id] = _Record(data, self.clock.time(), self._revision)
        for watcher in self._watchers.get(job_id, ()):
            watcher.put_nowait(data)

    async def store_record(self, job_id: str, data: bytes) -> None:
        """Store a job record (at once, as every write here)."""
        await self.put_record(job_id, data)

    async def get_record(self, job_id: str) -> bytes | None:
        """The latest record of a job, or None (also once `keep_result` has passed)."""
        record = self.records.get(job_id)
        if record is None:
            return None
        if record.stored_at + self.keep_result <= self.clock.time():
            del self.records[job_id]
            return None
        return record.data

    async def get_record_revision(self, job_id: str) -> tuple[bytes, int] | None:
        """The latest record of a job and its revision, or None."""
        data = await self.get_record(job_id)
        return (data, self.records[job_id].revision) if data is not None else None

    async def swap_record(self, job_id: str, data: bytes, revision: int) -> bool:
        """Store a job record only if `revision` is still its latest (0: it has none)."""
        current = await self.get_record_revision(job_id)
        if (current[1] if current is not None else 0) != revision:
            return False
        await self.put_record(job_id, data)
        return True

    async def delete_record(self, job_id: str) -> None:
        """Forget a job's record."""
        if self.records.pop(job_id, None) is not None:
            for watcher in self._watchers.get(job_id, ()):
                watcher.put_nowait(None)

    async def watch_record(self, job_id: str) -> AsyncIterator[bytes | None]:
        """Yield the job's current record (None if it has none), then every change."""
        changes: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._watchers.setdefault(job_id, []).append(changes)
        try:
            yield await self.get_record(job_id)
            while True:
                yield await changes.get()
        finally:
            watchers = self._watchers.get(job_id, [])
            with contextlib.suppress(ValueError):
                watchers.remove(changes)
            if not watchers:
                self._watchers.pop(job_id, None)

    # -- queued and held jobs ----------------------------------------------------------------

    async def find_queued(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue that still holds job `job_id`, or None."""
        return self.jobs.find(job_id, queue)

    async def remove_queued(self, queue: str, job_id: str) -> bool:
        """Delete a job that is still in its queue (waiting, running or between attempts)."""
        return self.jobs.remove(job_id, queue)

    async def find_held(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue of a delayed job still held for later, or None."""
        return self.jobs.find(job_id, queue, held=True)

    async def remove_held(self, queue: str, job_id: str) -> bool:
        """Delete a delayed job that is still held for later."""
        return self.jobs.remove(job_id, queue, held=True)

    # -- events and aborts -------------------------------------------------------------------

    async def publish_event(self, queue: str, kind: str, data: bytes) -> None:
        """Hand a lifecycle event to the listeners of its queue."""
        for listener in list(self.listeners):
            listener.deliver(queue, data)

    async def listen_events(self, queue: str | None = None) -> MemoryEventListener:
        """Listen to the events of `queue` (all if None) from now on."""
        listener = MemoryEventListener(self, queue)
        self.listeners.add(listener)
        return listener

    async def announce_abort(self, job_id: str) -> None:
        """Tell every listening worker to cancel job `job_id`."""
        for handler in list(self.abort_handlers):
            try:
                await handler(job_id)
            except Exception:
                log.exception("abort handler %r failed for job %s", handler, job_id)

    async def listen_aborts(self, handler: AbortHandler) -> Callable[[], Awaitable[None]]:
        """Call `handler(job_id)` for every abort announced; returns the unsubscribe."""
        self.abort_handlers.append(handler)

        async def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self.abort_handlers.remove(handler)

        return unsubscribe

    # -- dead letters ------------------------------------------------------------------------

    def add_dead(self, queue: str, job_id: str, data: bytes, msg_id: str) -> bool:
        """Store a dead letter; False (nothing stored) if `msg_id` is a recent duplicate."""
        now = self.clock.time()
        for seen, at in list(self._dead_ids.items()):
            if at + self.duplicate_window > now:
                break
            del self._dead_ids[seen]
        if msg_id in self._dead_ids:
            return False
        self._dead_ids[msg_id] = now
        self._dead_seq += 1
        seq = self._dead_seq
        self.dead[seq] = StoredMessage(seq, f"{queue}.{job_id}", data, now)
        self._dead_queue[seq] = (queue, job_id)
        return True

    def _dead_of(self, queue: str, job_id: str | None = None) -> list[StoredMessage]:
        return [
            message
            for seq, message in self.dead.items()
            if self._dead_queue[seq][0] == queue
            and (job_id is None or self._dead_queue[seq][1] == job_id)
        ]

    async def dead_letters(self, queue: str, after: int = 0) -> AsyncIterator[StoredMessage]:
        """The dead letters of `queue` after sequence `after`, oldest first."""
        for message in self._dead_of(queue):
            if message.seq > after and message.seq in self.dead:
                yield message

    async def dead_letter(self, queue: str, job_id: str) -> StoredMessage | None:
        """The latest dead letter of job `job_id` on `queue`, or None."""
        found = self._dead_of(queue, job_id)
        return found[-1] if found else None

    async def dead_queues(self) -> dict[str, int]:
        """Dead-letter count per queue."""
        counts: dict[str, int] = {}
        for queue, _ in self._dead_queue.values():
            counts[queue] = counts.get(queue, 0) + 1
        return counts

    async def delete_dead(self, seq: int) -> None:
        """Remove one dead letter."""
        self.dead.pop(seq, None)
        self._dead_queue.pop(seq, None)

    async def purge_dead(self, queue: str) -> int:
        """Remove every dead letter of `queue`; returns how many there were."""
        found = self._dead_of(queue)
        for message in found:
            await self.delete_dead(message.seq)
        return len(found)

    async def republish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Put a job back on its queue with a fresh dedupe id."""
        self.jobs.publish(queue, job_id, data, msg_id)

    async def flush(self, timeout: float = 10.0) -> None:
        """Nothing is buffered here; lets other tasks run once."""
        await asyncio.sleep(0)
