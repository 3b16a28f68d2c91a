"""Delayed jobs, repeatable ticks, shared rate limits and queue pauses on JetStream.

A delayed job is stored on ``<prefix>.sched.<queue>.<job id>`` in the jobs stream, with its
due time in the ``Aioq-Run-At`` header. Every scheduler pulls from one durable consumer on
those subjects. A job that is not due yet is handed back with ``nak(delay=time left)``, so the
server itself wakes it at its due time (a nak'd message keeps its place, and its timer, in
the consumer's state, on disk). Once due, the scheduler publishes it to
``<prefix>.jobs.<queue>.<job id>`` with ``Nats-Msg-Id: <job id>`` and acknowledges it: if two
schedulers ever publish the same job (a lost ack), the stream stores it once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

import msgspec
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    RawStreamMsg,
    StorageType,
)
from nats.js.errors import (
    APIError,
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoStreamResponseError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from aioq._nats.inbox import PullInbox, pull_status
from aioq.errors import BrokerError, EnqueueError, ProvisioningError
from aioq.naming import Names
from aioq.options import MAX_RUN_AT
from aioq.transport import HeldJob, OutgoingJob

__all__ = [
    "MAX_NAK_DELAY_S",
    "RUN_AT_HEADER",
    "NatsHeldJob",
    "NatsHeldJobs",
    "NatsScheduling",
    "parse_run_at",
    "read_run_at",
]

log = logging.getLogger("aioq.nats")

RUN_AT_HEADER: Final = "Aioq-Run-At"
_MSG_ID: Final = "Nats-Msg-Id"
# Headers of a held message that its released job does not keep.
_HELD_ONLY: Final = frozenset((_MSG_ID, RUN_AT_HEADER))
# A held message gets a dedupe id of its own: with the job id it would make the scheduler's
# publish of the due job (same stream, same window) a duplicate, and the job would vanish.
_HELD_ID_PREFIX: Final = "held:"
# Held messages a scheduler asks for at once. They are handled as soon as they arrive (a nak
# or a publish each), so a big batch only saves pull round trips.
_BATCH: Final = 256
# The lease of a held message in a scheduler's hands. A scheduler that dies holding one lets
# another take it after this long; handling takes milliseconds.
_HELD_ACK_WAIT_S: Final = 10.0
#: The longest delay one nak asks for. The server keeps a nak delay in int64 nanoseconds (about
#: 292 years); a job due later than this is handed back again each time it comes back.
MAX_NAK_DELAY_S: Final = 86_400.0
# Extra wait for the server's own expiry notice of a pull.
_PULL_MARGIN_S: Final = 1.0
# Held messages `NatsScheduling.held_jobs` reads at once.
_READ_AT_ONCE: Final = 32
# Consumer pause (`pause_until`) exists from this server version on.
_PAUSE_VERSION: Final = (2, 11, 0)
# An open-ended pause: the latest time nats-server accepts.
_FOREVER: Final = "9999-12-31T23:59:59Z"
# A resume is a pause ending this long after it is set (see `NatsScheduling.resume_queue`).
_RESUME_AFTER_S: Final = 0.05
_RESUME_ATTEMPTS: Final = 5
# A compare-and-set on a tick record is retried this often before the record is left as is.
_CAS_ATTEMPTS: Final = 5


#: Called with (job id, queue, stream sequence, task name) once a released job is queued.
QueuedHook = Callable[[str, str, int, str | None], Awaitable[None]]


class _TaskName(msgspec.Struct):
    task: str


_task_decoder: Final = msgspec.json.Decoder(_TaskName)


def task_name(data: bytes) -> str | None:
    """The task of a held job's message, for its record; None if unreadable."""
    try:
        return _task_decoder.decode(data).task
    except msgspec.DecodeError:
        return None


def read_run_at(value: str | None) -> float | None:
    """Read an ``Aioq-Run-At`` header: unix seconds, or an RFC 3339 time with a zone.

    None if the header is absent or empty. Raises `ValueError`, saying why, for anything else
    that is not a finite time up to 9999-12-31T23:59:59Z.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    shown = repr(text[:64])
    try:
        moment = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{RUN_AT_HEADER} {shown} is neither unix seconds nor an RFC 3339 time"
            ) from None
        if parsed.tzinfo is None:
            raise ValueError(f"{RUN_AT_HEADER} {shown} has no time zone") from None
        moment = parsed.timestamp()
    if not math.isfinite(moment):
        raise ValueError(f"{RUN_AT_HEADER} {shown} is not a finite time")
    if moment > MAX_RUN_AT:
        raise ValueError(f"{RUN_AT_HEADER} {shown} is after 9999-12-31T23:59:59Z")
    return moment


def parse_run_at(value: str | None) -> float | None:
    """`read_run_at`, with None for an invalid header too."""
    try:
        return read_run_at(value)
    except ValueError:
        return None


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NatsHeldJob:
    """A held message received by a scheduler."""

    __slots__ = (
        "_js",
        "_msg",
        "_names",
        "_queued",
        "data",
        "job_id",
        "queue",
        "run_at",
        "run_at_error",
        "seq",
    )

    def __init__(self, msg: Msg, js: JetStreamContext, names: Names, queued: QueuedHook) -> None:
        self._msg = msg
        self._js = js
        self._names = names
        self._queued = queued
        tokens = msg.subject.split(".")
        self.queue, self.job_id = tokens[-2], tokens[-1]
        self.data = msg.data
        self.seq = msg.metadata.sequence.stream
        self.run_at_error: str | None = None
        try:
            self.run_at = read_run_at(msg.headers.get(RUN_AT_HEADER) if msg.headers else None)
        except ValueError as e:
            self.run_at, self.run_at_error = None, str(e)

    async def postpone(self, delay: float) -> None:
        """Hand it back; the server delivers it again in `delay` seconds (at most a day)."""
        await self._msg.nak(delay=min(max(delay, 0.001), MAX_NAK_DELAY_S))

    async def release(self) -> bool:
        """Publish the job on its queue, then acknowledge the held message.

        In that order: a scheduler dying in between leaves the held message to be delivered
        again after its lease, and that second publish is a duplicate the stream ignores.
        """
        kept = {k: v for k, v in (self._msg.headers or {}).items() if k not in _HELD_ONLY}
        ack = await self._js.publish(
            self._names.job_subject(self.queue),
            self._msg.data,
            headers={**kept, _MSG_ID: self.job_id},
        )
        if not ack.duplicate:
            await self._queued(self.job_id, self.queue, ack.seq, task_name(self._msg.data))
        await self._msg.ack()
        return bool(ack.duplicate)

    async def hand_back(self) -> None:
        """Hand it back for immediate redelivery."""
        await self._msg.nak()

    async def discard(self) -> None:
        """Drop it from the hold without moving it to its queue."""
        await self._msg.ack()


class NatsHeldJobs:
    """Pulls held messages from the schedulers' consumer, one open pull at a time.

    A pull asks for up to `_BATCH` messages and lingers for the fetch timeout. Messages come
    to one inbox subscription that lives as long as the puller, so none is lost between two
    fetches; a new pull is sent only once the previous one has ended (filled, expired, or
    answered with a status), so the server never holds more than one of ours.
    """

    def __init__(
        self, nc: NatsClient, js: JetStreamContext, names: Names, queued: QueuedHook
    ) -> None:
        self._js = js
        self._names = names
        self._queued = queued
        self._inbox = PullInbox(
            nc, f"$JS.API.CONSUMER.MSG.NEXT.{names.jobs_stream}.{names.scheduler_consumer}"
        )
        self._open_until = 0.0  # monotonic end of the open pull; 0 when none is open
        self._left = 0

    async def start(self) -> None:
        """Subscribe to the inbox that receives the pulled messages."""
        await self._inbox.start()

    async def fetch(self, timeout: float) -> list[HeldJob]:
        """Wait up to `timeout` seconds for held messages."""
        loop = asyncio.get_running_loop()
        if loop.time() >= self._open_until:
            await self._inbox.pull({"batch": _BATCH, "expires": int(timeout * 1e9)})
            self._open_until = loop.time() + timeout + _PULL_MARGIN_S
            self._left = _BATCH
        deadline = min(loop.time() + timeout + _PULL_MARGIN_S, self._open_until)
        while not self._inbox.arrived and loop.time() < deadline:
            if not await self._inbox.wait(deadline - loop.time()):
                break
        if self._inbox.lost:  # gone with the connection it was sent on: pull again next time
            self._open_until = 0.0
        return self._take()

    def _take(self) -> list[HeldJob]:
        held: list[HeldJob] = []
        arrived = self._inbox.arrived
        while arrived:
            msg = arrived.popleft()
            status = pull_status(msg)
            if status is None:
                held.append(NatsHeldJob(msg, self._js, self._names, self._queued))
                self._left -= 1
                if self._left <= 0:
                    self._open_until = 0.0
            elif status != "100":  # 100: idle heartbeat; 404/408/409 end the pull
                self._open_until = 0.0
        return held

    async def close(self) -> None:
        """Stop receiving, then hand back whatever arrived and was not returned."""
        await self._inbox.close()


class NatsScheduling:
    """The scheduler's, the rate limiter's and the pause commands' side of the broker."""

    def __init__(
        self, nc: NatsClient, js: JetStreamContext, names: Names, queued: QueuedHook
    ) -> None:
        self.nc = nc
        self.js = js
        self.names = names
        self._queued = queued
        self._buckets: dict[str, KeyValue] = {}

    # -- delayed jobs ----------------------------------------------------------------------

    def _held_headers(
        self, job_id: str, run_at: float, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        own = {_MSG_ID: _HELD_ID_PREFIX + job_id, RUN_AT_HEADER: f"{run_at:.6f}"}
        return {**headers, **own} if headers else own

    async def hold(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        run_at: float,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Store a delayed job on its held subject; True if the id was held already."""
        try:
            ack = await self.js.publish(
                self.names.sched_subject(queue, job_id),
                data,
                headers=self._held_headers(job_id, run_at, headers),
            )
        except (APIError, NoStreamResponseError, nats.errors.Error, TimeoutError) as e:
            raise EnqueueError(
                f"cannot enqueue delayed job {job_id} on queue {queue!r}: {e!r}; retrying with "
                "the same job id is safe"
            ) from e
        return bool(ack.duplicate)

    async def hold_many(
        self, jobs: Sequence[tuple[OutgoingJob, float]]
    ) -> list[bool | BaseException]:
        """Publish every held job before awaiting the acknowledgements."""
        futures = [
            await self.js.publish_async(
                self.names.sched_subject(job.queue, job.job_id),
                job.data,
                headers=self._held_headers(job.job_id, run_at, job.headers),
            )
            for job, run_at in jobs
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [r if isinstance(r, BaseException) else bool(r.duplicate) for r in results]

    async def held_jobs(self, queue: str, now: float) -> tuple[int, int]:
        """Delayed jobs of `queue` still held: ``(due by now, not yet due)``.

        Reads the due time of each held message (`_READ_AT_ONCE` requests at a time), so it
        suits occasional checks (a burst worker about to exit), not a tight poll of a large
        hold. A message without a valid due time counts as due: a scheduler releases it at
        once.
        """
        stream = self.names.jobs_stream
        try:
            info = await self.js.stream_info(
                stream, subjects_filter=self.names.sched_subject(queue)
            )
        except NotFoundError:
            return 0, 0
        subjects = info.state.subjects or {}
        if not subjects:
            return 0, 0
        reading = asyncio.Semaphore(_READ_AT_ONCE)

        async def run_ats(subject: str, count: int) -> list[float | None]:
            async with reading:
                return await self._run_ats(stream, subject, count)

        found = await asyncio.gather(*(run_ats(s, n) for s, n in subjects.items()))
        due = later = 0
        for run_at in (r for per_subject in found for r in per_subject):
            if run_at is None or run_at <= now:
                due += 1
            else:
                later += 1
        return due, later

    async def _run_ats(self, stream: str, subject: str, count: int) -> list[float | None]:
        """The due times of the messages on one held subject (gone ones are skipped)."""
        msgs: list[RawStreamMsg] = []
        try:
            if count == 1:
                msgs.append(await self.js.get_msg(stream, subject=subject))
            else:  # the same job id held again after the dedupe window: read each
                seq = 0
                while True:
                    msg = await self.js.get_msg(stream, seq=seq + 1, subject=subject, next=True)
                    msgs.append(msg)
                    seq = msg.seq or seq + 1
        except NotFoundError:
            pass  # released meanwhile, or the last one was read
        return [parse_run_at((m.headers or {}).get(RUN_AT_HEADER)) for m in msgs]

    async def open_held(self) -> NatsHeldJobs:
        """Create or update the schedulers' consumer and start pulling from it.

        No ``max_ack_pending``: every held job not yet due is a nak'd message waiting for
        its redelivery, and those count as pending, so any cap would stall the schedulers
        once that many jobs are held.
        """
        config = ConsumerConfig(
            durable_name=self.names.scheduler_consumer,
            filter_subject=self.names.sched_subject(),
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=_HELD_ACK_WAIT_S,
            max_deliver=-1,
            max_ack_pending=-1,
        )
        try:
            await self.js.add_consumer(self.names.jobs_stream, config)
        except APIError as e:
            raise ProvisioningError(
                f"cannot create consumer {config.durable_name} on {self.names.jobs_stream}: {e}"
            ) from e
        held = NatsHeldJobs(self.nc, self.js, self.names, self._queued)
        await held.start()
        return held

    # -- KV state ----------------------------------------------------------------------------

    async def _bucket(self, name: str) -> KeyValue:
        kv = self._buckets.get(name)
        if kv is not None:
            return kv
        try:
            kv = await self.js.key_value(name)
        except BucketNotFoundError:
            config = KeyValueConfig(bucket=name, history=1, storage=StorageType.FILE, direct=True)
            try:
                kv = await self.js.create_key_value(config)
            except APIError as e:
                if e.err_code != 10058:
                    raise ProvisioningError(f"cannot create KV bucket {name}: {e}") from e
                kv = await self.js.key_value(name)
        self._buckets[name] = kv
        return kv

    async def _read(self, bucket: str, key: str) -> tuple[bytes | None, int]:
        kv = await self._bucket(bucket)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None, 0
        return entry.value or None, entry.revision or 0

    async def _write(self, bucket: str, key: str, data: bytes, revision: int) -> bool:
        kv = await self._bucket(bucket)
        try:
            if revision:
                await kv.update(key, data, last=revision)
            else:
                await kv.create(key, data)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def last_tick(self, name: str) -> float | None:
        """The latest tick recorded for repeatable `name`."""
        data, _ = await self._read(self.names.schedules_bucket, name)
        return _tick_of(data)

    async def record_tick(self, name: str, tick: float) -> None:
        """Record `tick` as fired (compare-and-set, so a later tick is never overwritten)."""
        record = json.dumps({"tick": tick, "fired_at": time.time()}).encode()
        for _ in range(_CAS_ATTEMPTS):
            data, revision = await self._read(self.names.schedules_bucket, name)
            recorded = _tick_of(data)
            if recorded is not None and recorded >= tick:
                return
            if await self._write(self.names.schedules_bucket, name, record, revision):
                return

    async def read_limit(self, queue: str) -> tuple[bytes | None, int]:
        """The shared rate-limit state of `queue`."""
        return await self._read(self.names.limits_bucket, queue)

    async def write_limit(self, queue: str, data: bytes, revision: int) -> bool:
        """Compare-and-set the shared rate-limit state of `queue`."""
        return await self._write(self.names.limits_bucket, queue, data, revision)

    # -- pause -------------------------------------------------------------------------------

    def _check_pause_support(self) -> None:
        version = self.nc.connected_server_version
        found = (version.major, version.minor, version.patch)
        if found < _PAUSE_VERSION:
            raise BrokerError(
                "pausing a queue needs nats-server 2.11 or newer (consumer pause); "
                f"the server runs {'.'.join(map(str, found))}. Stop the queue's workers instead, "
                "or upgrade the server"
            )

    async def _require_consumer(self, queue: str) -> None:
        try:
            await self.js.consumer_info(self.names.jobs_stream, self.names.consumer(queue))
        except NotFoundError:
            raise BrokerError(
                f"queue {queue!r} has no consumer on stream {self.names.jobs_stream} yet: "
                "start a worker on it once (or check the queue name and --prefix)"
            ) from None

    async def pause_queue(self, queue: str, until: datetime | None) -> None:
        """Pause the queue's consumer until `until` (None: until resumed)."""
        self._check_pause_support()
        await self._require_consumer(queue)
        stamp = _FOREVER if until is None else _rfc3339(until)
        await self.js.pause_consumer(self.names.jobs_stream, self.names.consumer(queue), stamp)

    async def resume_queue(self, queue: str) -> None:
        """Resume the queue's consumer at once.

        Not with the server's resume request: after it, pulls that were already waiting (an
        idle worker's) get nothing until they expire, seconds later (measured on 2.11.0 and
        2.15.1). A pause that ends does serve them, at once; so the pause is replaced by one
        ending `_RESUME_AFTER_S` from now, by the server's clock (a pause that ends in the
        server's past would not wake anyone either, hence the growing margin).
        """
        self._check_pause_support()
        await self._require_consumer(queue)
        if await self.paused_until(queue) is None:
            return
        stream, consumer = self.names.jobs_stream, self.names.consumer(queue)
        margin = _RESUME_AFTER_S
        for _ in range(_RESUME_ATTEMPTS):
            end = datetime.now(UTC) + timedelta(seconds=margin)
            answer = await self.js.pause_consumer(stream, consumer, _rfc3339(end))
            if answer.paused:
                await asyncio.sleep(margin)  # resumed when this returns
                return
            margin *= 4  # the server's clock is ahead of ours
        await self.js.resume_consumer(stream, consumer)

    async def paused_until(self, queue: str) -> datetime | None:
        """End of the queue's pause, None if not paused (or the server cannot pause)."""
        try:
            info = await self.js.consumer_info(self.names.jobs_stream, self.names.consumer(queue))
        except NotFoundError:
            return None
        if not getattr(info, "paused", False):
            return None
        return _parse_rfc3339(getattr(info.config, "pause_until", None))

    async def delete_consumer(self, queue: str) -> bool:
        """Delete the queue's consumer (its jobs stay in the stream); False if it had none."""
        try:
            await self.js.delete_consumer(self.names.jobs_stream, self.names.consumer(queue))
        except NotFoundError:
            return False
        return True


def _parse_rfc3339(stamp: object) -> datetime | None:
    """A server timestamp (nanoseconds, ``Z``) as an aware datetime."""
    if not isinstance(stamp, str) or not stamp:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", stamp.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _tick_of(data: bytes | None) -> float | None:
    if not data:
        return None
    try:
        value = json.loads(data)["tick"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None
