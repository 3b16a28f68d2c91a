"""Job records, lookups, aborts and dead letters on JetStream: the lifecycle side of the broker."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import APIError, BucketNotFoundError, KeyNotFoundError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from aioq._nats.admin import NatsListener
from aioq.errors import ProvisioningError
from aioq.naming import Names
from aioq.transport import StoredMessage

__all__ = ["NatsStore", "StoredMessage"]

log = logging.getLogger("aioq.nats")

_MSG_ID: Final = "Nats-Msg-Id"
# A results bucket with no retention still needs a bound: records of unfinished jobs.
_DEFAULT_RESULT_TTL_S: Final = 86_400.0


class NatsStore:
    """Reads and writes job state: the results bucket, queued jobs, dead letters, aborts."""

    def __init__(self, nc: NatsClient, js: JetStreamContext, names: Names, kv: KeyValue) -> None:
        self.nc = nc
        self.js = js
        self.names = names
        self.kv = kv
        self._record_prefix = f"$KV.{names.results_bucket}."

    @classmethod
    async def open(
        cls, nc: NatsClient, js: JetStreamContext, names: Names, keep_result: float
    ) -> NatsStore:
        """Bind the results bucket, creating it with TTL `keep_result` if it is missing."""
        bucket = names.results_bucket
        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            config = KeyValueConfig(
                bucket=bucket,
                history=1,
                ttl=keep_result or _DEFAULT_RESULT_TTL_S,
                storage=StorageType.FILE,
                direct=True,
            )
            try:
                kv = await js.create_key_value(config)
            except APIError as e:
                if e.err_code != 10058:
                    raise ProvisioningError(f"cannot create KV bucket {bucket}: {e}") from e
                kv = await js.key_value(bucket)
        return cls(nc, js, names, kv)

    # -- records ---------------------------------------------------------------------------

    async def put_record(self, job_id: str, data: bytes) -> None:
        """Store a job record without waiting for the server (stored in publish order)."""
        await self.nc.publish(self._record_prefix + job_id, data)

    async def store_record(self, job_id: str, data: bytes) -> None:
        """Store a job record and wait until the server has stored it (read-your-writes)."""
        await self.kv.put(job_id, data)

    async def get_record(self, job_id: str) -> bytes | None:
        """The latest record of a job, or None."""
        try:
            entry = await self.kv.get(job_id)
        except KeyNotFoundError:
            return None
        return entry.value or None

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

    async def find_queued(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue whose stream still holds job `job_id` on its own subject, or None."""
        pattern = self.names.job_subject(queue or "*", job_id)
        for subject in await self._subjects(self.names.jobs_stream, pattern):
            return subject.split(".")[-2]
        return None

    async def get_queued(self, queue: str, job_id: str) -> StoredMessage | None:
        """The stored message of a queued job, or None."""
        return await self._last(self.names.jobs_stream, self.names.job_subject(queue, job_id))

    async def remove_queued(self, queue: str, job_id: str) -> bool:
        """Delete a job that is still in its queue (waiting, running or between attempts)."""
        subject = self.names.job_subject(queue, job_id)
        if not await self._subjects(self.names.jobs_stream, subject):
            return False
        await self.js.purge_stream(self.names.jobs_stream, subject=subject)
        return True

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

    async def dead_letters(self, queue: str) -> AsyncIterator[StoredMessage]:
        """Every dead letter of `queue`, oldest first."""
        subject = self.names.dead_subject(queue)
        seq = 1
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
        await self.js.publish(
            self.names.job_subject(queue, job_id), data, headers={_MSG_ID: msg_id}
        )

    # -- helpers ---------------------------------------------------------------------------

    async def _last(self, stream: str, subject: str) -> StoredMessage | None:
        try:
            msg = await self.js.get_msg(stream, subject=subject)
        except NotFoundError:
            return None
        return _stored(msg)

    async def _next(self, stream: str, subject: str, seq: int) -> StoredMessage | None:
        try:
            msg = await self.js.get_msg(stream, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return None
        return _stored(msg)


def _stored(msg: object) -> StoredMessage:
    seq = getattr(msg, "seq", 0) or 0
    subject = getattr(msg, "subject", "") or ""
    data = getattr(msg, "data", b"") or b""
    when = getattr(msg, "time", None)
    timestamp = when.timestamp() if when is not None and hasattr(when, "timestamp") else None
    return StoredMessage(seq, subject, data, timestamp)
