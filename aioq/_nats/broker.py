"""`NatsBroker`: the `aioq.transport.Broker` seam on NATS JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError
from nats.js.kv import KeyValue

from aioq._nats.delivery import NatsDelivery
from aioq._nats.inbox import PullInbox, connection_restored, pull_status
from aioq._nats.inspection import NatsInspection
from aioq._nats.provision import ensure_consumer, ensure_streams, ensure_workers_bucket
from aioq._nats.scheduling import NatsScheduling
from aioq._nats.store import NatsStore
from aioq._nats.throttle import LogThrottle
from aioq.clock import SYSTEM_CLOCK, Clock
from aioq.errors import BrokerError, BrokerUnavailableError, EnqueueError, PayloadTooLargeError
from aioq.naming import Names
from aioq.options import QueueOptions
from aioq.settings import NatsSettings
from aioq.transport import Delivery, OutgoingJob

__all__ = ["NatsBroker", "NatsSettings", "NatsSource"]

log = logging.getLogger("aioq.nats")

_MSG_ID = "Nats-Msg-Id"
# A no_wait pull is answered at once; this only bounds a lost answer (e.g. a disconnect).
_NO_WAIT_TIMEOUT_S = 5.0
# A consumer at its max_ack_pending holds even a no_wait pull until acks make room, sending
# neither the rest of the batch nor a status. Once some jobs came, a pause this long ends
# the wait, so the jobs that did come are not kept from running; what the held pull brings
# later is handed out by the next fetch.
_NO_WAIT_QUIET_S = 0.005
# Extra wait for the server's own expiry notice of a lingering pull.
_LINGER_MARGIN_S = 1.0
# A link that went silent without closing (a partition, a firewall that lost its state) is
# noticed by unanswered pings: after about (outstanding + 1) intervals, 15 s, the client drops
# it and reconnects. nats-py's default (2 minutes, 2 pings) leaves a worker idle for minutes.
_PING_INTERVAL_S = 5
_MAX_OUTSTANDING_PINGS = 2
_ENDED = object()


class NatsSource:
    """Pulls one queue's jobs from its durable consumer.

    The worker asks for what is available now (`fetch_now`, a ``no_wait`` pull sized to its
    free slots) and, only when the queue is empty, leaves a lingering pull for a single message
    (`fetch_next`). So it never has more messages requested than it has free slots, and an idle
    worker starts a job as soon as it is stored, without waiting for a batch to fill.
    """

    def __init__(self, nc: NatsClient, next_subject: str) -> None:
        self._inbox = PullInbox(nc, next_subject)
        self._held: list[Msg] = []

    async def start(self) -> None:
        """Subscribe to the inbox that receives this source's pulled messages."""
        await self._inbox.start()

    async def fetch_now(self, count: int) -> list[Delivery]:
        """Up to `count` jobs that are available now, without waiting for new ones."""
        # No pull is outstanding between calls: what arrived since is late, and statuses in
        # it answer pulls that are already over.
        while self._collect(count) is _ENDED:
            pass
        if len(self._held) < count:
            await self._inbox.pull({"batch": count - len(self._held), "no_wait": True})
            await self._wait(count, _NO_WAIT_TIMEOUT_S, quiet=_NO_WAIT_QUIET_S)
        return self._hand_over()

    async def fetch_next(self, timeout: float) -> list[Delivery]:
        """Wait up to `timeout` seconds for one job; an empty list if none came."""
        while self._collect(1) is _ENDED:
            pass
        if not self._held:
            # The server expires the pull before the client gives up on it, so no message
            # can arrive for a pull nobody waits for.
            await self._inbox.pull({"batch": 1, "expires": int(timeout * 1e9)})
            await self._wait(1, timeout + _LINGER_MARGIN_S)
        return self._hand_over()

    def _hand_over(self) -> list[Delivery]:
        held, self._held = self._held, []
        return [NatsDelivery(m) for m in held]

    async def _wait(self, count: int, timeout: float, quiet: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._collect(count) is not _ENDED and len(self._held) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if quiet is not None and self._held:
                remaining = min(remaining, quiet)
            if not await self._inbox.wait(remaining):
                return

    def _collect(self, count: int) -> object:
        """Move arrived job messages to `_held`; return `_ENDED` when a pull was answered."""
        arrived = self._inbox.arrived
        while arrived and len(self._held) < count:
            msg = arrived.popleft()
            status = pull_status(msg)
            if status is None:
                self._held.append(msg)
            elif status != "100":  # 100 is an idle heartbeat; 404/408/409 end a pull
                return _ENDED
        return None

    async def close(self) -> None:
        """Stop receiving, then hand back (nak) every message received but not yet returned."""
        await self._inbox.close(self._take_held)

    def _take_held(self) -> list[Msg]:
        held, self._held = self._held, []
        return held


class NatsBroker:
    """JetStream storage of jobs, dead letters and worker heartbeats for one app prefix."""

    def __init__(self, settings: NatsSettings, names: Names, keep_result: float = 86_400.0) -> None:
        self.settings = settings
        self.names = names
        self.keep_result = keep_result
        self._store: NatsStore | None = None
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._workers_kv: KeyValue | None = None
        self._closing = False
        self._connected = False
        self._connect_error: BaseException | None = None
        self._error_log = LogThrottle()
        # While the connection is down: when it went, and the errors of reconnect attempts.
        self._down_since: float | None = None
        self._down_errors = 0

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context; only valid once connected."""
        if self._js is None:
            raise BrokerError("not connected: call `await app.connect()` or use `async with app`")
        return self._js

    @property
    def nc(self) -> NatsClient:
        """The NATS connection; only valid once connected."""
        if self._nc is None:
            raise BrokerError("not connected: call `await app.connect()` or use `async with app`")
        return self._nc

    @property
    def store(self) -> NatsStore:
        """Job records, lookups, aborts and dead letters; only valid once connected."""
        if self._store is None:
            raise BrokerError("not connected: call `await app.connect()` or use `async with app`")
        return self._store

    @property
    def scheduling(self) -> NatsScheduling:
        """Delayed jobs, repeatable ticks, shared rate limits and queue pauses."""
        nc, js = self.nc, self.js
        current = getattr(self, "_scheduling", None)
        if current is None or current.nc is not nc:
            current = NatsScheduling(nc, js, self.names, self.store.put_queued)
            self._scheduling = current
        return current

    @property
    def inspection(self) -> NatsInspection:
        """Read-only views of queues, workers, job records and held jobs."""
        return NatsInspection(self.js, self.names, self.store)

    @property
    def max_payload(self) -> int:
        """Largest message the connected server accepts."""
        return self.nc.max_payload

    @property
    def clock(self) -> Clock:
        """The system clock (the server's own timers use its clock, which NTP keeps close)."""
        return SYSTEM_CLOCK

    async def flush(self, timeout: float = 10.0) -> None:
        """Return once the server has everything published so far."""
        await self.store.flush(timeout)

    @property
    def server_version(self) -> tuple[int, int, int]:
        """Version of the connected server."""
        v = self.nc.connected_server_version
        return (v.major, v.minor, v.patch)

    async def connect(self) -> None:
        """Connect, check that JetStream is on, and create the streams if missing."""
        s = self.settings
        nc = NatsClient()
        try:
            await nc.connect(
                servers=s.servers,
                name=s.name,
                user_credentials=s.credentials,
                token=s.token,
                user=s.user,
                password=s.password,
                tls=s.tls,
                # nats-py annotates these as int but takes float seconds.
                connect_timeout=s.connect_timeout,  # type: ignore[arg-type]
                # Fail fast on the first connect; reconnect forever once connected.
                max_reconnect_attempts=1,
                reconnect_time_wait=0.5,  # type: ignore[arg-type]
                ping_interval=_PING_INTERVAL_S,
                max_outstanding_pings=_MAX_OUTSTANDING_PINGS,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except asyncio.CancelledError:
            # nats-py leaves the socket of a cancelled connect attempt open.
            with contextlib.suppress(Exception):
                await nc.close()
            raise
        except Exception as e:
            # "no servers available" says less than the error of the last attempt.
            cause = self._connect_error if isinstance(e, nats.errors.NoServersError) else None
            raise BrokerUnavailableError(
                f"cannot reach NATS at {', '.join(s.servers)}: {_describe(cause or e)} "
                "(is nats-server running? `aioq server` starts a local one)"
            ) from e
        self._connected = True
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 1.0
        js = nc.jetstream()
        try:
            await js.account_info()
            await ensure_streams(js, self.names)
            self._store = await NatsStore.open(nc, js, self.names, self.keep_result)
        except (nats.errors.NoRespondersError, NoStreamResponseError) as e:
            await nc.close()
            raise BrokerUnavailableError(
                f"JetStream is not enabled on {', '.join(s.servers)}: start nats-server with -js "
                "(or a jetstream block in its config)"
            ) from e
        except BaseException:
            await nc.close()
            raise
        self._nc, self._js = nc, js

    async def _on_error(self, error: Exception) -> None:
        if not self._connected:
            # A failed first connect ends in one BrokerUnavailableError naming this error;
            # a warning per attempt would only repeat it.
            self._connect_error = error
            log.debug("nats: %s", _describe(error))
            return
        message = _describe(error)
        if self._down_since is not None:
            # Each reconnect attempt fails the same way: the first says why, the rest are counted.
            self._down_errors += 1
            if self._down_errors > 1:
                log.debug("nats: %s", message)
                return
        repeats = self._error_log.admit(message)
        if repeats is not None:
            log.warning("nats: %s%s", message, f" (and {repeats} more)" if repeats else "")

    async def _on_disconnected(self) -> None:
        if not self._closing and self._down_since is None:
            self._down_since = time.monotonic()
            self._down_errors = 0
            log.warning("nats: disconnected, reconnecting")

    async def _on_reconnected(self) -> None:
        if self._nc is not None:
            connection_restored(self._nc)  # the pulls open on the old connection are gone
        if self._down_since is None:
            log.warning("nats: reconnected")
            return
        down = time.monotonic() - self._down_since
        failed = self._down_errors
        self._down_since = None
        log.warning("nats: reconnected after %.1fs (%d connection errors while down)", down, failed)

    async def close(self, *, flush: bool = True) -> None:
        """Flush buffered acks and publishes, then disconnect.

        Args:
            flush: Wait for the server to confirm it has everything. False when the loop is
                shutting down: its tasks, the connection's reader among them, are being
                cancelled, so no confirmation could arrive; what is buffered is still sent.
        """
        self._closing = True
        nc, self._nc, self._js, self._workers_kv = self._nc, None, None, None
        self._store = None
        if nc is None or nc.is_closed:
            return
        if flush:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=5)
        await nc.close()

    def _check_size(self, data: bytes) -> None:
        limit = self.max_payload
        if len(data) > limit:
            raise PayloadTooLargeError(
                f"job is {len(data)} bytes, above the server's max_payload of {limit} bytes: "
                "pass a reference (a URL or object key) instead of the data itself"
            )

    async def publish_job(
        self,
        queue: str,
        data: bytes,
        job_id: str,
        task: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        """Store one job, deduplicated by its id."""
        self._check_size(data)
        try:
            ack = await self.js.publish(
                self.names.job_subject(queue), data, headers={**(headers or {}), _MSG_ID: job_id}
            )
        except (APIError, NoStreamResponseError, nats.errors.Error, TimeoutError) as e:
            raise EnqueueError(
                f"cannot enqueue job {job_id} on queue {queue!r}: {_describe(e)}; "
                "retrying with the same job id is safe"
            ) from e
        if not ack.duplicate:
            await self.store.put_queued(job_id, queue, ack.seq, task)
        return bool(ack.duplicate)

    async def publish_jobs(self, jobs: Sequence[OutgoingJob]) -> list[bool | BaseException]:
        """Publish every job before awaiting the acknowledgements."""
        for job in jobs:
            self._check_size(job.data)
        js = self.js
        futures = [
            await js.publish_async(
                self.names.job_subject(job.queue),
                job.data,
                headers={**(job.headers or {}), _MSG_ID: job.job_id},
            )
            for job in jobs
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        store = self.store
        for job, result in zip(jobs, results, strict=True):
            if not isinstance(result, BaseException) and not result.duplicate:
                await store.put_queued(job.job_id, job.queue, result.seq, job.task)
        return [r if isinstance(r, BaseException) else bool(r.duplicate) for r in results]

    async def open_source(self, queue: str, options: QueueOptions) -> NatsSource:
        """Create or update the queue's consumer and bind a pull subscription to it."""
        await ensure_consumer(self.js, self.names, queue, options)
        next_subject = (
            f"$JS.API.CONSUMER.MSG.NEXT.{self.names.jobs_stream}.{self.names.consumer(queue)}"
        )
        source = NatsSource(self.nc, next_subject)
        await source.start()
        return source

    async def publish_dead(self, queue: str, job_id: str, data: bytes, msg_id: str) -> None:
        """Store a dead-letter record; the id makes a repeated record a no-op."""
        await self.js.publish(
            self.names.dead_subject(queue, job_id), data, headers={_MSG_ID: msg_id}
        )

    async def put_record(self, job_id: str, data: bytes) -> None:
        """Store a job's latest state (not awaited: records are stored in publish order)."""
        await self.store.put_record(job_id, data)

    async def delete_record(self, job_id: str) -> None:
        """Forget a job's state."""
        await self.store.delete_record(job_id)

    async def publish_event(self, queue: str, kind: str, data: bytes) -> None:
        """Publish a lifecycle event (core NATS: live listeners only)."""
        await self.store.publish_event(queue, kind, data)

    async def listen_aborts(
        self, handler: Callable[[str], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """Call `handler(job_id)` for each abort announced; returns the unsubscribe."""
        return await self.store.listen_aborts(handler)

    async def backlog(self, queue: str) -> int:
        """Jobs of `queue` waiting, being run, or waiting out a retry delay (not held ones)."""
        return await self.store.backlog(queue)

    async def _workers(self, ttl: float) -> KeyValue:
        if self._workers_kv is None:
            self._workers_kv = await ensure_workers_bucket(self.js, self.names, ttl)
        return self._workers_kv

    async def put_worker(self, worker_id: str, data: bytes, ttl: float) -> None:
        """Write a worker heartbeat; the bucket's TTL removes it once the worker goes silent."""
        kv = await self._workers(ttl)
        await kv.put(worker_id, data)

    async def delete_worker(self, worker_id: str) -> None:
        """Remove a worker's heartbeat so it leaves the list at once."""
        if self._workers_kv is not None:
            await self._workers_kv.purge(worker_id)


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
