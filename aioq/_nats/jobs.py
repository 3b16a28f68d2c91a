"""`NatsJobs`: jobs on their queues' subjects of the jobs stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from aioq._nats.batches import MAX_BATCH, send_batch
from aioq._nats.domain import api_prefix
from aioq._nats.level_watch import NatsLevelWatch
from aioq._nats.limits import full_or_failed
from aioq._nats.provision import ensure_consumer, level_consumers
from aioq._nats.records import NatsRecords
from aioq._nats.source import NatsSource
from aioq._nats.streams import MSG_ID, gone, message_at, subjects
from aioq._nats.throttle import describe
from aioq.backend.dead import StoredMessage
from aioq.backend.jobs import OutgoingJob
from aioq.errors import EnqueueError, PayloadTooLargeError, PermissionDeniedError
from aioq.naming import Names
from aioq.options import QueueOptions
from aioq.priority import DEFAULT_PRIORITY, priority_of

__all__ = ["NatsJobs"]

# The server's answer to a batch sent to a stream without `allow_atomic`.
_ATOMIC_DISABLED: Final = 10174
#: Seconds an acknowledgement of `publish_many` may take, as for one JetStream publish: an
#: answer lost with its connection is otherwise awaited for ever.
ACK_TIMEOUT_S = 5.0


class NatsJobs:
    """Publishes jobs (each with its "queued" record), pulls them, finds and removes them."""

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        names: Names,
        records: NatsRecords,
        atomic: bool = False,
    ) -> None:
        self.nc = nc
        self.js = js
        self.names = names
        self.records = records
        # Whether the jobs stream takes atomic batches (`publish_many` sends them then).
        self.atomic = atomic

    def _check_size(self, data: bytes) -> None:
        limit = self.nc.max_payload
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"job is {len(data)} bytes, above the server's max_payload of {limit} bytes: "
                "pass a reference (a URL or object key) instead of the data itself"
            )

    async def publish(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        task: str | None = None,
        headers: Mapping[str, str] | None = None,
        priority: int = DEFAULT_PRIORITY,
    ) -> bool:
        """Store one job, deduplicated by its id."""
        self._check_size(data)
        try:
            ack = await self.js.publish(
                self.names.publish_subject(queue, priority),
                data,
                headers={**(headers or {}), MSG_ID: job_id},
            )
        except APIError as e:
            raise full_or_failed(e, queue, job_id) from e
        except (NoStreamResponseError, nats.errors.Error, TimeoutError) as e:
            raise EnqueueError(
                f"cannot enqueue job {job_id} on queue {queue!r}: {describe(e)}{_unanswered(e)}; "
                "retrying with the same job id is safe"
            ) from e
        # A duplicate's answer names the stored message: its record is written where none is,
        # as when the answer to an earlier send of the job was lost.
        await self.records.put_queued(job_id, queue, ack.seq, task)
        return bool(ack.duplicate)

    async def publish_many(self, jobs: Sequence[OutgoingJob]) -> list[bool | BaseException]:
        """Publish every job before awaiting the acknowledgements.

        On a stream that takes them, in atomic batches of up to `MAX_BATCH` jobs, each with
        one acknowledgement; a batch the server refused (one of its ids is stored already, a
        queue is full) is published again job by job, which tells each job's outcome.
        """
        for job in jobs:
            self._check_size(job.data)
        if not self.atomic:
            return await self._publish_each(jobs)
        chunks = [jobs[i : i + MAX_BATCH] for i in range(0, len(jobs), MAX_BATCH)]
        commits = []
        for chunk in chunks:
            messages = [self._message(job) for job in chunk]
            commits.append(await send_batch(self.nc, self.js, messages))
            # Lets the connection write this batch out: the server stores it meanwhile.
            await asyncio.sleep(0)
        outcomes: list[bool | BaseException] = []
        for chunk, commit in zip(chunks, commits, strict=True):
            outcomes += await self._committed(chunk, commit)
        return outcomes

    def _message(self, job: OutgoingJob) -> tuple[str, bytes, dict[str, str]]:
        headers = {**job.headers, MSG_ID: job.job_id} if job.headers else {MSG_ID: job.job_id}
        return self.names.publish_subject(job.queue, job.priority), job.data, headers

    async def _committed(
        self, chunk: Sequence[OutgoingJob], commit: asyncio.Future[PubAck]
    ) -> list[bool | BaseException]:
        """The outcomes of a batch's jobs, once its commit is answered; records for them."""
        try:
            ack = await asyncio.wait_for(commit, ACK_TIMEOUT_S)
        except (APIError, PermissionDeniedError) as e:
            # Nothing of the batch was stored; job by job, each job gets its own outcome.
            if isinstance(e, APIError) and e.err_code == _ATOMIC_DISABLED:
                self.atomic = False  # the stream was changed since provisioning
            return await self._publish_each(chunk)
        except (NoStreamResponseError, nats.errors.Error, TimeoutError) as e:
            return [e] * len(chunk)
        # A batch is stored at consecutive sequences, ending at the commit's.
        first = ack.seq - len(chunk) + 1
        await self.records.put_queued_many(
            (job.job_id, job.queue, first + n, job.task) for n, job in enumerate(chunk)
        )
        return [False] * len(chunk)

    async def _publish_each(self, jobs: Sequence[OutgoingJob]) -> list[bool | BaseException]:
        """Publish every job on its own, then await the acknowledgements."""
        futures = []
        for job in jobs:
            subject, data, headers = self._message(job)
            futures.append(await self.js.publish_async(subject, data, headers=headers))
        answers = (asyncio.wait_for(f, ACK_TIMEOUT_S) for f in futures)
        results = await asyncio.gather(*answers, return_exceptions=True)
        await self.records.put_queued_many(
            (job.job_id, job.queue, r.seq, job.task)
            for job, r in zip(jobs, results, strict=True)
            if not isinstance(r, BaseException)  # duplicates too, as in `publish`
        )
        return [
            full_or_failed(r, job.queue, job.job_id)
            if isinstance(r, APIError)
            else r
            if isinstance(r, BaseException)
            else bool(r.duplicate)
            for job, r in zip(jobs, results, strict=True)
        ]

    async def republish(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Put a job back on its queue (at its message's level) with a fresh dedupe id."""
        subject = self.names.publish_subject(queue, priority_of(data))
        ack = await self.js.publish(subject, data, headers={MSG_ID: msg_id})
        await self.records.note_requeued(job_id, ack.seq)

    async def open_source(
        self, queue: str, options: QueueOptions, level: int | None = None
    ) -> NatsSource:
        """Create or update the queue's (or its `level`'s) consumer and pull from it."""
        await ensure_consumer(self.js, self.names, queue, options, level)
        next_subject = (
            f"{api_prefix(self.js)}.CONSUMER.MSG.NEXT.{self.names.jobs_stream}."
            f"{self.names.consumer(queue, level)}"
        )
        source = NatsSource(self.nc, next_subject)
        await source.start()
        return source

    async def levels(self, queue: str) -> dict[int, int]:
        """Jobs stored on each priority level's subject of `queue`, from the stream's state."""
        stored = await subjects(
            self.js, self.names.jobs_stream, self.names.priority_wildcard(queue)
        )
        found = {self.names.level_of(subject, queue): n for subject, n in stored.items() if n}
        return {level: n for level, n in found.items() if level is not None}

    async def watch_levels(self, queue: str, heard: Callable[[int], None]) -> NatsLevelWatch:
        """Hear jobs stored on the watched levels of `queue` (core subscriptions)."""
        return NatsLevelWatch(self.nc, self.names, queue, heard)

    async def delete_consumer(self, queue: str) -> bool:
        """Delete the queue's consumers, its levels' too (its jobs stay); False if it had none."""
        stream = self.names.jobs_stream
        for consumer in await level_consumers(self.js, self.names, queue):
            with contextlib.suppress(NotFoundError):
                await self.js.delete_consumer(stream, consumer)
        try:
            await self.js.delete_consumer(stream, self.names.consumer(queue))
        except NotFoundError:
            return False
        return True

    async def backlog(self, queue: str) -> int:
        """Jobs of `queue` waiting, being run, or waiting out a retry delay.

        Read from the queue's consumer (``num_pending + num_ack_pending``: a job waiting out
        a retry delay is unacknowledged); before any worker created it, the jobs stored on
        the queue's subjects. Jobs of the priority levels are counted from the stream.
        """
        levels = sum((await self.levels(queue)).values())
        try:
            info = await self.js.consumer_info(self.names.jobs_stream, self.names.consumer(queue))
        except NotFoundError:
            count = levels
            for pattern in self.names.job_filters(queue):
                count += sum((await subjects(self.js, self.names.jobs_stream, pattern)).values())
            return count
        return (info.num_pending or 0) + (info.num_ack_pending or 0) + levels

    async def _queued_at(self, job_id: str, queue: str | None) -> tuple[str, int] | None:
        """The queue and stream sequence of job `job_id` if its message is still stored.

        The job's record says where its message is (`NatsRecords.put_queued`); the message
        is still there while the job waits, runs or waits out a retry delay.
        """
        record = await self.records.locate(job_id)
        if record is None or (queue and record[0] != queue):
            return None
        message = await message_at(self.js, self.names.jobs_stream, record[1])
        if message is None or not self.names.is_job_subject(message.subject, record[0]):
            return None
        return record

    async def find(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue whose stream still holds job `job_id`, or None."""
        found = await self._queued_at(job_id, queue)
        return found[0] if found else None

    async def get(self, queue: str, job_id: str) -> StoredMessage | None:
        """The stored message of a job still in its queue, or None."""
        found = await self._queued_at(job_id, queue)
        return await message_at(self.js, self.names.jobs_stream, found[1]) if found else None

    async def remove(self, queue: str, job_id: str) -> bool:
        """Delete a job that is still in its queue (waiting, running or between attempts)."""
        found = await self._queued_at(job_id, queue)
        if found is None:
            return False
        try:
            return bool(await self.js.delete_msg(self.names.jobs_stream, found[1]))
        except APIError as e:
            if gone(e):  # acknowledged or removed in between
                return False
            raise


def _unanswered(error: BaseException) -> str:
    """Why a publish got no answer, for the errors that mean the stream had no leader."""
    if isinstance(error, NoStreamResponseError | TimeoutError | nats.errors.NoRespondersError):
        return (
            " (no stream leader answered: a cluster electing one, which takes seconds, or "
            "without a quorum, i.e. fewer than 2 of 3 nodes up; or the server is down)"
        )
    return ""
