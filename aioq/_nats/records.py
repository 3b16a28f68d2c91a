"""`NatsRecords`: job records in the results KV bucket, the one way records are written."""

from __future__ import annotations

import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from typing import Final

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from aioq._nats.bulk import header_block, publish_all
from aioq._nats.domain import kv_write_prefix
from aioq._nats.provision import ensure_bucket
from aioq._nats.record_writes import RecordWrites
from aioq._nats.streams import message_at
from aioq.naming import Names
from aioq.settings import Replication
from aioq.wire import JobRecord, JobState, encode

__all__ = ["NatsRecords"]

# Jobs enqueued from this connection whose "queued" record is kept here (see put_queued).
_RECENTLY_QUEUED: Final = 10_000
# Makes a record write conditional: stored only if the key has no record yet.
_EXPECT_NO_RECORD_HEADER: Final = header_block({"Nats-Expected-Last-Subject-Sequence": "0"})
# A results bucket with no retention still needs a bound: records of unfinished jobs.
_DEFAULT_RESULT_TTL_S: Final = 86_400.0

_record_decoder: Final = msgspec.json.Decoder(JobRecord)


class NatsRecords:
    """Job records (encoded `JobRecord`), one key per job in the results bucket."""

    def __init__(
        self, nc: NatsClient, js: JetStreamContext, names: Names, kv: KeyValue, keep_result: float
    ) -> None:
        self.nc = nc
        self.js = js
        self.names = names
        self.kv = kv
        self.keep_result = keep_result
        self._subject_prefix = kv_write_prefix(js, names.results_bucket)
        self._writes = RecordWrites(nc, js, self._subject_prefix)
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
    ) -> NatsRecords:
        """Bind the results bucket, creating it with TTL `keep_result` if it is missing."""
        ttl = keep_result or _DEFAULT_RESULT_TTL_S
        kv = await ensure_bucket(js, names.results_bucket, ttl, replication)
        records = cls(nc, js, names, kv, keep_result)
        await records._writes.start()
        return records

    async def put(self, job_id: str, data: bytes) -> None:
        """Store a record without waiting for the server (stored in publish order).

        A record the server did not store (a cluster electing the bucket's leader, a lost
        connection) is written again in the background unless a later one replaced it.
        """
        await self._writes.write(job_id, data)

    async def put_queued(self, job_id: str, queue: str, seq: int, task: str | None) -> None:
        """Record a job just stored at stream sequence `seq` as queued, without waiting.

        Every job of a queue shares the queue's subject, so this record is how a queued job
        is found by its id (and removed, by `seq`). Only a job without a record gets it: a
        worker may have started the job already, and its record must stay.
        """
        await self.put_queued_many([(job_id, queue, seq, task)])

    async def put_queued_many(self, jobs: Iterable[tuple[str, str, int, str | None]]) -> None:
        """`put_queued` for many jobs (id, queue, sequence, task), published at once."""
        if not self.keep_result:
            return
        now = time.time()
        recent = self._recently_queued
        prefix = self._subject_prefix
        encoded = []
        for job_id, queue, seq, task in jobs:
            record = JobRecord(
                id=job_id, state=JobState.QUEUED, task=task, queue=queue, enqueued_at=now, seq=seq
            )
            data = encode(record)
            recent[job_id] = (queue, seq, data)
            encoded.append((prefix + job_id, _EXPECT_NO_RECORD_HEADER, data))
        while len(recent) > _RECENTLY_QUEUED:
            recent.popitem(last=False)
        await publish_all(self.nc, encoded)

    async def note_requeued(self, job_id: str, seq: int) -> None:
        """Put the stream sequence of a job published again into its existing record."""
        found = await self.get_revision(job_id)
        if found is None:
            return
        record = _record_decoder.decode(found[0])
        record.seq = seq
        with contextlib.suppress(Exception):  # a worker wrote first: its record stays
            await self.kv.update(job_id, encode(record), last=found[1])

    async def store(self, job_id: str, data: bytes) -> None:
        """Store a record and wait until the server has stored it (read-your-writes)."""
        await self.kv.put(job_id, data)

    async def get(self, job_id: str) -> bytes | None:
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
        message = await message_at(self.js, self.names.jobs_stream, seq)
        if message is None or not self.names.is_job_subject(message.subject, queue):
            return None
        return data

    async def locate(self, job_id: str) -> tuple[str, int] | None:
        """The queue and stream sequence the job's record names, if it names both."""
        raw = await self.get(job_id)
        if raw is None:
            return None
        record = _record_decoder.decode(raw)
        if record.seq is None or record.queue is None:
            return None
        return record.queue, record.seq

    async def get_revision(self, job_id: str) -> tuple[bytes, int] | None:
        """The latest record of a job and its revision, or None."""
        try:
            entry = await self.kv.get(job_id)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return entry.value, entry.revision

    async def swap(self, job_id: str, data: bytes, revision: int) -> bool:
        """Store a record only if `revision` is still its latest (0: it has none)."""
        try:
            if revision:
                await self.kv.update(job_id, data, last=revision)
            else:
                await self.kv.create(job_id, data)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def delete(self, job_id: str) -> None:
        """Forget a job's record."""
        with contextlib.suppress(Exception):
            await self.kv.purge(job_id)

    async def watch(self, job_id: str) -> AsyncIterator[bytes | None]:
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
