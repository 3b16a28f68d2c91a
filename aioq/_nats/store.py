"""Job records, lookups, aborts and dead letters on JetStream: the lifecycle side of the broker."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    APIError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from aioq._nats.domain import kv_write_prefix
from aioq._nats.listener import NatsListener
from aioq._nats.provision import ensure_bucket
from aioq._nats.record_writes import RecordWrites
from aioq.naming import Names
from aioq.settings import Replication
from aioq.transport import StoredMessage
from aioq.wire import JobRecord, JobState, encode

__all__ = ["NatsStore", "StoredMessage"]

log = logging.getLogger("aioq.nats")

_MSG_ID: Final = "Nats-Msg-Id"
# Jobs enqueued from this connection whose "queued" record `NatsStore` keeps (see put_queued).
_RECENTLY_QUEUED: Final = 10_000
# The server's error code for a message that is no longer there (it may come as a 500).
_NO_MESSAGE_FOUND: Final = 10057
# ... and its answer to deleting a sequence that is gone (a 400).
_SEQUENCE_NOT_FOUND: Final = 10043
# Makes a record write conditional: stored only if the key has no record yet.
_EXPECT_NO_RECORD: Final = "Nats-Expected-Last-Subject-Sequence"


_record_decoder: Final = msgspec.json.Decoder(JobRecord)
# A results bucket with no retention still needs a bound: records of unfinished jobs.
_DEFAULT_RESULT_TTL_S: Final = 86_400.0


class NatsStore:
    """Reads and writes job state: the results bucket, queued jobs, dead letters, aborts."""

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        names: Names,
        kv: KeyValue,
        keep_result: float = _DEFAULT_RESULT_TTL_S,
    ) -> None:
        self.nc = nc
        self.js = js
        self.names = names
        self.kv = kv
        self.keep_result = keep_result
        self._record_prefix = kv_write_prefix(js, names.results_bucket)
        self._records = RecordWrites(nc, js, self._record_prefix)
        # Where the jobs enqueued lately from here are, for a lookup that comes before their
        # "queued" record is stored (it is written without waiting for the server).
        self._recently_queued: OrderedDict[str, tuple[str, int, bytes]] = OrderedDict()

    @classmethod
    async def open(
        cls,
        nc: NatsClient,
        js: JetStreamContext,
        names: Names,
        keep_result: float,
        replication: Replication,
    ) -> NatsStore:
        """Bind the results bucket, creating it with TTL `keep_result` if it is missing."""
        config = KeyValueConfig(
            bucket=names.results_bucket,
            history=1,
            ttl=keep_result or _DEFAULT_RESULT_TTL_S,
            storage=StorageType.FILE,
            direct=True,
        )
        kv = await ensure_bucket(js, config, replication)
        store = cls(nc, js, names, kv, keep_result)
        await store._records.start()
        return store

    # -- records ---------------------------------------------------------------------------

    async def put_record(self, job_id: str, data: bytes) -> None:
        """Store a job record without waiting for the server (stored in publish order).

        A record the server did not store (a cluster electing the bucket's leader, a lost
        connection) is written again in the background unless a later one replaced it.
        """
        await self._records.write(job_id, data)

    async def put_queued(self, job_id: str, queue: str, seq: int, task: str | None) -> None:
        """Record a job just stored at stream sequence `seq` as queued, without waiting.

        Every job of a queue shares the queue's subject, so this record is how a queued job
        is found by its id (and removed, by `seq`). Only a job without a record gets it: a
        worker may have started the job already, and its record must stay.
        """
        if not self.keep_result:
            return
        record = JobRecord(
            id=job_id,
            state=JobState.QUEUED,
            task=task,
            queue=queue,
            enqueued_at=time.time(),
            seq=seq,
        )
        data = encode(record)
        self._recently_queued[job_id] = (queue, seq, data)
        if len(self._recently_queued) > _RECENTLY_QUEUED:
            self._recently_queued.popitem(last=False)
        await self.nc.publish(self._record_prefix + job_id, data, headers={_EXPECT_NO_RECORD: "0"})

    async def note_requeued(self, job_id: str, seq: int) -> None:
        """Put the stream sequence of a job published again into its existing record."""
        try:
            entry = await self.kv.get(job_id)
        except KeyNotFoundError:
            return
        if not entry.value or entry.revision is None:
            return
        record = _record_decoder.decode(entry.value)
        record.seq = seq
        with contextlib.suppress(Exception):  # a worker wrote first: its record stays
            await self.kv.update(job_id, encode(record), last=entry.revision)

    async def store_record(self, job_id: str, data: bytes) -> None:
        """Store a job record and wait until the server has stored it (read-your-writes)."""
        await self.kv.put(job_id, data)

    async def get_record_revision(self, job_id: str) -> tuple[bytes, int] | None:
        """The latest record of a job and its revision, or None."""
        try:
            entry = await self.kv.get(job_id)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return entry.value, entry.revision

    async def swap_record(self, job_id: str, data: bytes, revision: int) -> bool:
        """Store a job record only if `revision` is still its latest (0: it has none)."""
        try:
            if revision:
                await self.kv.update(job_id, data, last=revision)
            else:
                await self.kv.create(job_id, data)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def get_record(self, job_id: str) -> bytes | None:
        """The latest record of a job, or None."""
        try:
            entry = await self.kv.get(job_id)
        except KeyNotFoundError:
            return await self._unstored_queued_record(job_id)
        return entry.value or None

    async def _unstored_queued_record(self, job_id: str) -> bytes | None:
        """The "queued" record of a job enqueued from here that the server has not stored yet.

        It is written without waiting (`put_queued`), so a lookup right after the enqueue
        can come first; the job's message, still stored at its sequence, vouches for it.
        """
        recent = self._recently_queued.get(job_id)
        if recent is None:
            return None
        queue, seq, data = recent
        message = await self._at(self.names.jobs_stream, seq)
        if message is None or not self.names.is_job_subject(message.subject, queue):
            return None
        return data

    async def delete_record(self, job_id: str) -> None:
        """Forget a job's record."""
        with contextlib.suppress(Exception):
            await self.kv.purge(job_id)

    async def watch_record(self, job_id: str) -> AsyncIterator[bytes | None]:
        """Yield the job's current record (None if it has none), then every change."""
        watcher = await self.kv.watch(job_id)
        try:
            while True:
                entry = await watcher.updates(timeout=None)  # type: ignore[no-untyped-call]
                # None marks the end of the current values: the job has no record yet.
                if entry is None or entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    yield None
                else:
                    yield entry.value
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    # -- queued and held jobs ----------------------------------------------------------------

    async def _subjects(self, stream: str, pattern: str) -> dict[str, int]:
        try:
            info = await self.js.stream_info(stream, subjects_filter=pattern)
        except NotFoundError:
            return {}
        return dict(info.state.subjects or {})

    async def backlog(self, queue: str) -> int:
        """Jobs of `queue` waiting, being run, or waiting out a retry delay.

        Read from the queue's consumer (``num_pending + num_ack_pending``: a job waiting out
        a retry delay is unacknowledged); before any worker created it, the jobs stored on
        the queue's subjects.
        """
        try:
            info = await self.js.consumer_info(self.names.jobs_stream, self.names.consumer(queue))
        except NotFoundError:
            count = 0
            for pattern in self.names.job_filters(queue):
                count += sum((await self._subjects(self.names.jobs_stream, pattern)).values())
            return count
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    async def _queued_at(self, job_id: str, queue: str | None) -> tuple[str, int] | None:
        """The queue and stream sequence of job `job_id` if its message is still stored.

        The job's record says where its message is (`put_queued`); the message is still
        there while the job waits, runs or waits out a retry delay.
        """
        raw = await self.get_record(job_id)
        if raw is None:
            return None
        record = _record_decoder.decode(raw)
        if record.seq is None or record.queue is None or (queue and record.queue != queue):
            return None
        message = await self._at(self.names.jobs_stream, record.seq)
        if message is None or not self.names.is_job_subject(message.subject, record.queue):
            return None
        return record.queue, record.seq

    async def find_queued(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue whose stream still holds job `job_id`, or None."""
        found = await self._queued_at(job_id, queue)
        return found[0] if found else None

    async def get_queued(self, queue: str, job_id: str) -> StoredMessage | None:
        """The stored message of a queued job, or None."""
        found = await self._queued_at(job_id, queue)
        return await self._at(self.names.jobs_stream, found[1]) if found else None

    async def remove_queued(self, queue: str, job_id: str) -> bool:
        """Delete a job that is still in its queue (waiting, running or between attempts)."""
        found = await self._queued_at(job_id, queue)
        if found is None:
            return False
        try:
            return bool(await self.js.delete_msg(self.names.jobs_stream, found[1]))
        except APIError as e:
            if _gone(e):  # acknowledged or removed in between
                return False
            raise

    def _held_subject(self, queue: str | None, job_id: str) -> str:
        return f"{self.names.prefix}.sched.{queue or '*'}.{job_id}"

    async def _held_stream(self, subject: str) -> str | None:
        try:
            return await self.js.find_stream_name_by_subject(subject)
        except NotFoundError:
            return None

    async def find_held(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue of a delayed job still held for later, or None."""
        subject = self._held_subject(queue, job_id)
        stream = await self._held_stream(subject)
        if stream is None:
            return None
        for found in await self._subjects(stream, subject):
            return found.split(".")[-2]
        return None

    async def remove_held(self, queue: str, job_id: str) -> bool:
        """Delete a delayed job that is still held for later."""
        subject = self._held_subject(queue, job_id)
        stream = await self._held_stream(subject)
        if stream is None or not await self._subjects(stream, subject):
            return False
        await self.js.purge_stream(stream, subject=subject)
        return True

    async def publish_event(self, queue: str, kind: str, data: bytes) -> None:
        """Publish a lifecycle event (core NATS: live listeners only)."""
        await self.nc.publish(self.names.event_subject(queue, kind), data)

    async def listen_events(self, queue: str | None = None) -> NatsListener:
        """Subscribe to the events of `queue` (all if None); the server has it on return."""
        return await NatsListener.open(self.nc, self.names.event_subject(queue or "*", "*"))

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once the server has everything published so far."""
        await self.nc.flush(timeout=math.ceil(timeout))

    # -- aborts ----------------------------------------------------------------------------

    async def announce_abort(self, job_id: str) -> None:
        """Tell every worker to cancel job `job_id` if it runs it."""
        await self.nc.publish(self.names.abort_subject(job_id), b"")
        await self.nc.flush()

    async def listen_aborts(
        self, handler: Callable[[str], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """Call `handler(job_id)` for every abort announced; returns an unsubscribe function."""

        async def on_msg(msg: Msg) -> None:
            await handler(msg.subject.rsplit(".", 1)[-1])

        sub = await self.nc.subscribe(self.names.abort_subject(), cb=on_msg)
        return sub.unsubscribe

    # -- dead letters ------------------------------------------------------------------------

    async def dead_letters(self, queue: str, after: int = 0) -> AsyncIterator[StoredMessage]:
        """The dead letters of `queue` after sequence `after`, oldest first, one read each."""
        subject = self.names.dead_subject(queue)
        seq = after + 1
        while True:
            message = await self._next(self.names.dead_stream, subject, seq)
            if message is None:
                return
            yield message
            seq = message.seq + 1

    async def dead_letter(self, queue: str, job_id: str) -> StoredMessage | None:
        """The latest dead letter of job `job_id` on `queue`, or None."""
        return await self._last(self.names.dead_stream, self.names.dead_subject(queue, job_id))

    async def dead_queues(self) -> dict[str, int]:
        """Dead-letter count per queue."""
        counts: dict[str, int] = {}
        for subject, count in (
            await self._subjects(self.names.dead_stream, self.names.dead_subject("*"))
        ).items():
            queue = subject.split(".")[-2]
            counts[queue] = counts.get(queue, 0) + count
        return counts

    async def delete_dead(self, seq: int) -> None:
        """Remove one dead letter."""
        await self.js.delete_msg(self.names.dead_stream, seq)

    async def purge_dead(self, queue: str) -> int:
        """Remove every dead letter of `queue`; returns how many there were."""
        subject = self.names.dead_subject(queue)
        count = sum((await self._subjects(self.names.dead_stream, subject)).values())
        if count:
            await self.js.purge_stream(self.names.dead_stream, subject=subject)
        return count

    async def republish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Put a job back on its queue with a fresh dedupe id."""
        ack = await self.js.publish(self.names.job_subject(queue), data, headers={_MSG_ID: msg_id})
        await self.note_requeued(job_id, ack.seq)

    # -- helpers ---------------------------------------------------------------------------

    async def _last(self, stream: str, subject: str) -> StoredMessage | None:
        try:
            msg = await self.js.get_msg(stream, subject=subject)
        except NotFoundError:
            return None
        return _stored(msg)

    async def _at(self, stream: str, seq: int) -> StoredMessage | None:
        try:
            msg = await self.js.get_msg(stream, seq=seq)
        except APIError as e:
            if _gone(e):
                return None
            raise
        return _stored(msg)

    async def _next(self, stream: str, subject: str, seq: int) -> StoredMessage | None:
        try:
            msg = await self.js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return None
        return _stored(msg)


def _gone(error: APIError) -> bool:
    """Whether the server answered that the message is not there (404, 500 10057, 400 10043)."""
    gone_codes = (_NO_MESSAGE_FOUND, _SEQUENCE_NOT_FOUND)
    return isinstance(error, NotFoundError) or error.err_code in gone_codes


def _stored(msg: object) -> StoredMessage:
    seq = getattr(msg, "seq", 0) or 0
    subject = getattr(msg, "subject", "") or ""
    data = getattr(msg, "data", b"") or b""
    when = getattr(msg, "time", None)
    timestamp = when.timestamp() if when is not None and hasattr(when, "timestamp") else None
    return StoredMessage(seq, subject, data, timestamp)
