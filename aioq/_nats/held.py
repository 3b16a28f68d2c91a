"""`NatsHeld`: delayed jobs held on JetStream until their due time.

A delayed job is stored on ``<prefix>.sched.<queue>.<job id>`` in the jobs stream, with its
due time in the ``Aioq-Run-At`` header. Every scheduler pulls from one durable consumer on
those subjects. A job that is not due yet is handed back with ``nak(delay=time left)``, so the
server itself wakes it at its due time (a nak'd message keeps its place, and its timer, in
the consumer's state, on disk). Once due, the scheduler publishes it to its queue's subject
(of the priority level its message names) with ``Nats-Msg-Id: <job id>`` and acknowledges
it: if two schedulers ever publish the same job (a lost ack), the stream stores it once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Final

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RawStreamMsg
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from aioq._nats.domain import api_prefix
from aioq._nats.inbox import PullInbox, pull_status
from aioq._nats.records import NatsRecords
from aioq._nats.resend import publish_resent
from aioq._nats.run_at import RUN_AT_HEADER, parse_run_at, read_run_at, task_name
from aioq._nats.streams import MSG_ID, subjects
from aioq.backend.held import HeldJob
from aioq.backend.jobs import OutgoingJob
from aioq.errors import EnqueueError, ProvisioningError
from aioq.naming import Names
from aioq.priority import priority_of

__all__ = ["MAX_NAK_DELAY_S", "NatsHeld", "NatsHeldJob", "NatsHeldJobs"]

# A held message gets a dedupe id of its own: with the job id it would make the scheduler's
# publish of the due job (same stream, same window) a duplicate, and the job would vanish.
_HELD_ID_PREFIX: Final = "held:"
# Headers of a held message that its released job does not keep.
_HELD_ONLY: Final = frozenset((MSG_ID, RUN_AT_HEADER))
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
# Held messages `NatsHeld.counts` reads at once.
_READ_AT_ONCE: Final = 32


class NatsHeldJob:
    """A held message received by a scheduler."""

    __slots__ = (
        "_js",
        "_msg",
        "_names",
        "_records",
        "data",
        "job_id",
        "queue",
        "run_at",
        "run_at_error",
        "seq",
    )

    def __init__(self, msg: Msg, js: JetStreamContext, names: Names, records: NatsRecords) -> None:
        self._msg = msg
        self._js = js
        self._names = names
        self._records = records
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
        A publish stranded by a reconnect is sent again at once (`publish_resent`), so a
        server restart delays the job by the reconnect, not by the publish timeout.
        """
        kept = {k: v for k, v in (self._msg.headers or {}).items() if k not in _HELD_ONLY}
        ack, resent = await publish_resent(
            self._msg._client,
            self._js,
            self._names.publish_subject(self.queue, priority_of(self._msg.data)),
            self._msg.data,
            {**kept, MSG_ID: self.job_id},
        )
        if not ack.duplicate or resent:  # resent: the duplicate may be our own first send
            await self._records.put_queued(
                self.job_id, self.queue, ack.seq, task_name(self._msg.data)
            )
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
        self, nc: NatsClient, js: JetStreamContext, names: Names, records: NatsRecords
    ) -> None:
        self._js = js
        self._names = names
        self._records = records
        pull = f"{api_prefix(js)}.CONSUMER.MSG.NEXT.{names.jobs_stream}.{names.scheduler_consumer}"
        self._inbox = PullInbox(nc, pull)
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
                held.append(NatsHeldJob(msg, self._js, self._names, self._records))
                self._left -= 1
                if self._left <= 0:
                    self._open_until = 0.0
            elif status != "100":  # 100: idle heartbeat; 404/408/409 end the pull
                self._open_until = 0.0
        return held

    async def close(self) -> None:
        """Stop receiving, then hand back whatever arrived and was not returned."""
        await self._inbox.close()


class NatsHeld:
    """Holds delayed jobs for the schedulers; finds, counts and removes them."""

    def __init__(
        self, nc: NatsClient, js: JetStreamContext, names: Names, records: NatsRecords
    ) -> None:
        self.nc = nc
        self.js = js
        self.names = names
        self.records = records

    def _held_headers(
        self, job_id: str, run_at: float, headers: Mapping[str, str] | None
    ) -> dict[str, str]:
        own = {MSG_ID: _HELD_ID_PREFIX + job_id, RUN_AT_HEADER: f"{run_at:.6f}"}
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

    async def counts(self, queue: str, now: float) -> tuple[int, int]:
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

    async def open(self) -> NatsHeldJobs:
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
        held = NatsHeldJobs(self.nc, self.js, self.names, self.records)
        await held.start()
        return held

    def _held_subject(self, queue: str | None, job_id: str) -> str:
        return f"{self.names.prefix}.sched.{queue or '*'}.{job_id}"

    async def _held_stream(self, subject: str) -> str | None:
        try:
            return await self.js.find_stream_name_by_subject(subject)
        except NotFoundError:
            return None

    async def find(self, job_id: str, queue: str | None = None) -> str | None:
        """The queue of a delayed job still held for later, or None."""
        subject = self._held_subject(queue, job_id)
        stream = await self._held_stream(subject)
        if stream is None:
            return None
        for found in await subjects(self.js, stream, subject):
            return found.split(".")[-2]
        return None

    async def remove(self, queue: str, job_id: str) -> bool:
        """Delete a delayed job that is still held for later."""
        subject = self._held_subject(queue, job_id)
        stream = await self._held_stream(subject)
        if stream is None or not await subjects(self.js, stream, subject):
            return False
        await self.js.purge_stream(stream, subject=subject)
        return True
