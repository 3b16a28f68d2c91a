"""`NatsBroker`: the connection to NATS, and the seam's concepts on JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING, Final, NoReturn

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NoStreamResponseError, ServiceUnavailableError

from aioq._nats.auth import auth_options, connect_hint, says_why
from aioq._nats.batches import atomic_supported
from aioq._nats.client import AioqNatsClient
from aioq._nats.control import NatsControl
from aioq._nats.dead import NatsDead
from aioq._nats.denials import Denials
from aioq._nats.events import NatsEvents
from aioq._nats.held import NatsHeld
from aioq._nats.history import NatsHistory
from aioq._nats.inbox import connection_restored
from aioq._nats.inspection import NatsInspection
from aioq._nats.jobs import NatsJobs
from aioq._nats.provision import ensure_streams
from aioq._nats.records import NatsRecords
from aioq._nats.resend import connection_restored as publishes_restored
from aioq._nats.throttle import LogThrottle, describe
from aioq._nats.waiting import NatsWaiting
from aioq._nats.workers import NatsWorkers
from aioq.clock import SYSTEM_CLOCK, Clock
from aioq.errors import BrokerError, BrokerUnavailableError
from aioq.naming import Names
from aioq.settings import NatsSettings, Replication, redact_urls

__all__ = ["NatsBroker", "NatsSettings"]

log = logging.getLogger("aioq.nats")

_MSG_ID = "Nats-Msg-Id"
# A link that went silent without closing (a partition, a firewall that lost its state) is
# noticed by unanswered pings: after about (outstanding + 1) intervals, 15 s, the client drops
# it and reconnects. nats-py's default (2 minutes, 2 pings) leaves a worker idle for minutes.
_PING_INTERVAL_S = 5
_MAX_OUTSTANDING_PINGS = 2


# The seam's concepts: attributes of a connected broker (see `NatsBroker.__getattr__`).
_CONCEPTS: Final = frozenset(
    [
        "jobs",
        "records",
        "events",
        "history",
        "dead",
        "held",
        "control",
        "waiting",
        "workers",
        "inspection",
    ]
)


class NatsBroker:
    """JetStream storage of jobs, dead letters and worker heartbeats for one app prefix."""

    # The seam's concepts on the connection. Plain attributes, set by `connect` and dropped
    # by `close`: the worker reaches records and events several times per job.
    #: Jobs on their queues.
    jobs: NatsJobs
    #: Job records.
    records: NatsRecords
    #: Lifecycle events and aborts.
    events: NatsEvents
    #: Succeeded jobs kept for replay.
    history: NatsHistory
    #: Dead letters.
    dead: NatsDead
    #: Delayed jobs held until due.
    held: NatsHeld
    #: Rate limits, pauses and repeatable ticks.
    control: NatsControl
    #: Jobs waiting for their dependencies.
    waiting: NatsWaiting
    #: Worker heartbeats.
    workers: NatsWorkers
    #: Read-only views of queues, job records and held jobs.
    inspection: NatsInspection

    def __init__(
        self,
        settings: NatsSettings,
        names: Names,
        keep_result: float = 86_400.0,
        max_queued: int | None = None,
    ) -> None:
        self.settings = settings
        self.names = names
        self.keep_result = keep_result
        self.max_queued = max_queued
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._closing = False
        self._connected = False
        self._connect_error: BaseException | None = None
        self._error_log = LogThrottle()
        self._denials = Denials()
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

    @staticmethod
    def _not_connected() -> NoReturn:
        raise BrokerError("not connected: call `await app.connect()` or use `async with app`")

    if not TYPE_CHECKING:  # (mypy would take any unknown attribute for a valid one)

        def __getattr__(self, name: str) -> NoReturn:
            # Reached only when normal lookup fails: a concept before `connect`, after `close`.
            if name in _CONCEPTS:
                self._not_connected()
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

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
        await self.nc.flush(timeout=math.ceil(timeout))

    @property
    def server_version(self) -> tuple[int, int, int]:
        """Version of the connected server."""
        v = self.nc.connected_server_version
        return (v.major, v.minor, v.patch)

    async def connect(self) -> None:
        """Connect, check that JetStream is on, and create the streams if missing."""
        s = self.settings
        auth = auth_options(s)  # a bad TLS or key file is a ConfigError, before any attempt
        servers = ", ".join(redact_urls(s.servers))
        nc = AioqNatsClient()
        self._denials = nc.denials
        try:
            # nats-py can hang in its clean-up after a failed TLS handshake (it waits for the
            # broken socket to close); the attempts it makes are over well before this.
            async with asyncio.timeout((2 * s.connect_timeout + 1) * len(s.servers) + 1):
                await nc.connect(
                    servers=s.servers,
                    name=s.name,
                    **auth,
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
            last = isinstance(e, nats.errors.NoServersError | TimeoutError)
            cause = self._connect_error if last else None
            await self._discard(nc)
            why = cause or e
            raise BrokerUnavailableError(
                f"cannot reach NATS at {servers}: {describe(why)} {connect_hint(why)}"
            ) from e
        self._connected = True
        nc.options["max_reconnect_attempts"] = -1
        nc.options["reconnect_time_wait"] = 1.0
        js = nc.jetstream(domain=s.domain)
        replication = s.replication
        try:
            await js.account_info()
            atomic = await ensure_streams(
                js, self.names, replication, self.max_queued, atomic_supported(nc)
            )
            records = await NatsRecords.open(nc, js, self.names, self.keep_result, replication)
        except (nats.errors.NoRespondersError, NoStreamResponseError, ServiceUnavailableError) as e:
            await nc.close()
            raise BrokerUnavailableError(
                f"JetStream is not enabled on {servers}: start nats-server with -js "
                "(or a jetstream block in its config); on a leaf node, its link to the cluster "
                "is down"
            ) from e
        except BaseException:
            await nc.close()
            raise
        self._nc, self._js = nc, js
        self._attach(nc, js, records, replication, atomic)

    def _attach(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        records: NatsRecords,
        replication: Replication,
        atomic: bool,
    ) -> None:
        """Make the seam's concepts on the connection that just came up."""
        names = self.names
        self.records = records
        self.jobs = NatsJobs(nc, js, names, records, atomic)
        self.events = NatsEvents(nc, names)
        self.dead = NatsDead(js, names)
        self.held = NatsHeld(nc, js, names, records)
        self.history = NatsHistory(js, names, replication)
        self.control = NatsControl(nc, js, names, replication)
        self.workers = NatsWorkers(js, names, replication)
        self.waiting = NatsWaiting(js, names, replication)
        self.inspection = NatsInspection(js, names, self.dead)

    async def _discard(self, nc: NatsClient) -> None:
        """Close the client of a failed first connect, quietly and within a second."""
        closing, self._closing = self._closing, True  # no "disconnected" warning for it
        try:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await nc.close()
        finally:
            self._closing = closing

    async def _on_error(self, error: Exception) -> None:
        if not self._connected:
            # A failed first connect ends in one BrokerUnavailableError naming this error;
            # a warning per attempt would only repeat it.
            if self._connect_error is None or not says_why(self._connect_error):
                self._connect_error = error
            log.debug("nats: %s", describe(error))
            return
        message = describe(error)
        ended = self._denials.report(message)
        if ended:
            log.debug("nats: %s (raised as PermissionDeniedError)", message)
            return
        if ended is not None:
            # No request waits on it (a publish without reply: a record, an event): the log
            # is the only place it shows, once a second at most.
            repeats = self._error_log.admit(message)
            if repeats is not None:
                log.error("nats: %s%s", message, f" (and {repeats} more)" if repeats else "")
            return
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
            publishes_restored(self._nc)  # and so are the answers to publishes sent on it
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
        nc, self._nc, self._js = self._nc, None, None
        for name in _CONCEPTS:
            self.__dict__.pop(name, None)
        if nc is None or nc.is_closed:
            return
        if flush:
            with contextlib.suppress(Exception):
                await nc.flush(timeout=5)
        await nc.close()
