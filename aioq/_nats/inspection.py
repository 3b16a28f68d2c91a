"""`NatsInspection`: queue stats, workers, job records and held jobs read from JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from aioq._nats.scheduling import RUN_AT_HEADER, parse_run_at, task_name
from aioq._nats.store import NatsStore
from aioq._nats.stream_state import StreamState
from aioq.backend.inspection import HeldEntry, QueueStats
from aioq.naming import Names, validate_queue

__all__ = ["NatsInspection"]


class NatsInspection:
    """Reads stream, consumer and bucket state for one app prefix; changes nothing."""

    def __init__(self, js: JetStreamContext, names: Names, store: NatsStore) -> None:
        self.js = js
        self.names = names
        self.store = store
        self._admin = StreamState(js, names)

    async def queues(self, known: Iterable[str] = ()) -> list[QueueStats]:
        """Every queue with a consumer, jobs, delayed jobs or dead letters, plus `known`."""
        admin, names = self._admin, self.names
        stream, (held_in, held), dead = await asyncio.gather(
            admin.jobs_stream(),
            admin.per_queue(names.sched_subject("*", "*")),
            self.store.dead_queues(),
        )
        consumers = {c.name: c for c in stream.consumers if _is_queue(c.name)}
        covered = sum(c.pending + c.ack_pending for c in consumers.values())
        if held_in == names.jobs_stream:
            covered += sum(held.values())
        # Messages no queue consumer accounts for: jobs of queues nobody pulled from yet. Only
        # then is the (per-job) subject list read, since its size grows with the backlog.
        unconsumed: dict[str, int] = {}
        if stream.messages > covered:
            _, queued = await admin.per_queue(names.jobs_wildcard)
            unconsumed = {q: n for q, n in queued.items() if q not in consumers}
        found: list[QueueStats] = []
        for name in sorted(set(consumers) | set(held) | set(dead) | set(unconsumed) | set(known)):
            delayed, dead_count = held.get(name, 0), dead.get(name, 0)
            consumer = consumers.get(name)
            if consumer is None:
                pending = unconsumed.get(name, 0)
                found.append(
                    QueueStats(name=name, pending=pending, delayed=delayed, dead=dead_count)
                )
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

    async def workers(self) -> list[bytes]:
        """The value of every key in the workers bucket."""
        return await self._admin.worker_records()

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


def _is_queue(name: str) -> bool:
    try:
        validate_queue(name)
    except ValueError:
        return False
    return True
