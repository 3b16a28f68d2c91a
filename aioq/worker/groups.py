"""Group limits at the worker: the place a job of a limited group takes before it starts.

A job's group (``with_options(group=...)``) may have a rate limit and a cap on running jobs
(``app.group_limit``), held over every worker through the shared limits bucket:

- the rate limit is a `SharedLimit` on key ``group.<group>.rate``;
- the running jobs are a lease log on key ``group.<group>.running``: one entry (expiry, stream
  sequence) per running job, written with compare-and-set, renewed while the job runs, and
  dropped by whoever reads it once expired. A worker that dies stops renewing its entries,
  so their places come back after one lease (the queue's ``ack_wait``).

A job over its group's limit is put back (``nak`` with a delay); its record counts the
put-back (`JobRecord.deferred`), so that the delivery is not one of its attempts. Jobs of no
group, or of a group without a limit, pass without any round trip.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Final

import msgspec

from aioq.backend import Broker, Delivery
from aioq.groups import GroupLimit, GroupLimits
from aioq.wire import JobRecord, JobState, encode
from aioq.worker.attempt import job_id_of
from aioq.worker.limits import SharedLimit

__all__ = ["GroupGate"]

log = logging.getLogger("aioq.worker")

_CAS_ATTEMPTS: Final = 8
# Put-back delays get this much random spread, so that put-back jobs do not all return at once.
_SPREAD: Final = 0.2
# Shortest put-back: a job whose group has a token back in a moment still leaves the worker.
_MIN_DELAY_S: Final = 0.01
# Put-back delay while the limits bucket does not answer (no start is allowed meanwhile).
_OUTAGE_DELAY_S: Final = 1.0
# How long a worker trusts having seen a group full before it reads the log again.
_FULL_FOR_S: Final = 0.25
_GROUP_KEY: Final = b'"group"'


class _Peek(msgspec.Struct):
    """The fields of a job message the gate reads; the rest is decoded when the job runs."""

    group: str | None = None
    id: str | None = None
    task: str | None = None


class _Leases(msgspec.Struct):
    """The value of ``group.<group>.running``: (expiry in unix seconds, stream sequence)."""

    leases: list[tuple[float, int]] = msgspec.field(default_factory=list)


_peek: Final = msgspec.json.Decoder(_Peek)
_leases: Final = msgspec.json.Decoder(_Leases)
_encoder: Final = msgspec.json.Encoder()


class GroupGate:
    """Admits the jobs of limited groups, and keeps the places of those running here."""

    def __init__(self, limits: GroupLimits, broker: Broker) -> None:
        self.limits = limits
        self.broker = broker
        self.clock: Callable[[], float] = broker.clock.time
        # Places held here: group -> {stream sequence: lease seconds}.
        self.held: dict[str, dict[int, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._rates: dict[str, SharedLimit] = {}
        self._full_until: dict[str, float] = {}
        self._over: set[str] = set()
        self._failures = 0

    def group_of(self, delivery: Delivery) -> tuple[str, _Peek] | None:
        """The job's group if a limit applies to it (None costs no round trip)."""
        if not self.limits or _GROUP_KEY not in delivery.data:
            return None
        try:
            peek = _peek.decode(delivery.data)
        except msgspec.DecodeError:
            return None  # dead-lettered when it runs
        if peek.group is None or self.limits.of(peek.group) is None:
            return None
        return peek.group, peek

    async def admit(self, delivery: Delivery, queue: str, lease: float) -> tuple[bool, str | None]:
        """Take a place for the job of `delivery`: (admitted, its group if limited).

        A job over its group's limits is put back to its queue here (not admitted).
        """
        found = self.group_of(delivery)
        if found is None:
            return True, None
        group, peek = found
        limit = self.limits.of(group)
        assert limit is not None
        async with self._lock(group):
            wait = await self._take(group, limit, delivery.seq, lease)
        if wait is None:
            if group in self._over:
                self._over.discard(group)
                log.info("group %s: under its limits again", group)
            return True, group
        await self._put_back(delivery, queue, peek, wait)
        if group not in self._over:
            self._over.add(group)
            log.info("group %s: over its limits; its jobs are put back until they fit", group)
        return False, group

    def _lock(self, group: str) -> asyncio.Lock:
        return self._locks.setdefault(group, asyncio.Lock())

    async def _take(self, group: str, limit: GroupLimit, seq: int, lease: float) -> float | None:
        """Take a running place and a token; None if taken, else seconds until a retry."""
        try:
            if limit.max_running is not None:
                if self._full_until.get(group, 0.0) > time.monotonic():
                    return limit.recheck
                if not await self._lease(group, limit.max_running, seq, lease):
                    self._full_until[group] = time.monotonic() + min(_FULL_FOR_S, limit.recheck)
                    return limit.recheck
            if limit.rate_limit is not None:
                got, wait = await self._rate(group, limit).take(1)
                if not got:
                    if self.held.get(group, {}).pop(seq, None) is not None:
                        await self._update(group, _without(seq))
                    # No token in sight (a limit of 0): look again after `recheck`.
                    return max(wait, _MIN_DELAY_S) if math.isfinite(wait) else limit.recheck
        except Exception as e:
            self._failed(group, e)
            return _OUTAGE_DELAY_S
        self._failures = 0
        return None

    def _rate(self, group: str, limit: GroupLimit) -> SharedLimit:
        rate = self._rates.get(group)
        if rate is None or (rate.limit, rate.interval) != (limit.rate_limit, limit.rate_interval):
            assert limit.rate_limit is not None
            rate = SharedLimit(
                self.broker.control,
                f"group.{group}.rate",
                limit.rate_limit,
                limit.rate_interval,
                clock=self.clock,
            )
            self._rates[group] = rate
        return rate

    async def _lease(self, group: str, most: int, seq: int, lease: float) -> bool:
        """Add a running place for message `seq` unless `most` are live already."""
        for _ in range(_CAS_ATTEMPTS):
            live, revision = await self._read(group)
            live = [(t, s) for t, s in live if s != seq]  # an older delivery of this job
            if len(live) >= most:
                return False
            live.append((time.time() + lease, seq))
            if await self._write(group, live, revision):
                self.held.setdefault(group, {})[seq] = lease
                return True
        return False

    async def release(self, group: str, seq: int) -> None:
        """Give back the running place of message `seq` (its job ended or went back)."""
        places = self.held.get(group)
        if places is None or places.pop(seq, None) is None:
            return
        if not places:
            del self.held[group]
        self._full_until.pop(group, None)
        try:
            async with self._lock(group):
                await self._update(group, _without(seq))
        except Exception as e:  # the place comes back when its lease expires
            log.debug("group %s: cannot give back a running place: %s", group, e)

    async def renew(self) -> None:
        """Push the expiry of every place held here one lease ahead."""
        for group, places in list(self.held.items()):
            now = time.time()
            mine = dict(places)

            def renewed(live: list[tuple[float, int]]) -> list[tuple[float, int]]:
                return [(now + mine[s], s) if s in mine else (t, s) for t, s in live]  # noqa: B023

            try:
                async with self._lock(group):
                    await self._update(group, renewed)
            except Exception as e:
                self._failed(group, e)

    async def keep(self, period: float) -> None:
        """Renew the places held here every `period` seconds, until cancelled."""
        while True:
            await asyncio.sleep(period)
            if self.held:
                await self.renew()

    async def _update(
        self, group: str, change: Callable[[list[tuple[float, int]]], list[tuple[float, int]]]
    ) -> None:
        for _ in range(_CAS_ATTEMPTS):
            live, revision = await self._read(group)
            if await self._write(group, change(live), revision):
                return

    async def _read(self, group: str) -> tuple[list[tuple[float, int]], int]:
        data, revision = await self.broker.control.read_limit(f"group.{group}.running")
        if not data:
            return [], revision
        try:
            entries = _leases.decode(data).leases
        except msgspec.DecodeError:
            log.warning("group %s: unreadable running places, starting afresh", group)
            return [], revision
        now = time.time()
        return [(t, s) for t, s in entries if t > now], revision

    async def _write(self, group: str, live: list[tuple[float, int]], revision: int) -> bool:
        data = _encoder.encode(_Leases(live))
        return await self.broker.control.write_limit(f"group.{group}.running", data, revision)

    async def _put_back(self, delivery: Delivery, queue: str, peek: _Peek, wait: float) -> None:
        """Return the job to its queue for `wait` seconds, its record counting the put-back."""
        record = JobRecord(
            id=peek.id or job_id_of(None, delivery),
            state=JobState.QUEUED,
            task=peek.task,
            queue=queue,
            attempts=delivery.attempt - 1,
            enqueued_at=delivery.stored_at,
            seq=delivery.seq,
            deferred=delivery.delivered - delivery.attempt + 1,
        )
        try:
            await self.broker.records.put(record.id, encode(record))
        except Exception as e:  # the delivery then counts as an attempt, nothing worse
            log.debug("job %s: cannot record its put-back: %s", record.id, e)
        await delivery.nak(wait * random.uniform(1.0, 1.0 + _SPREAD))

    def _failed(self, group: str, error: Exception) -> None:
        self._failures += 1
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(level, "group %s: shared group limits unavailable (%s)", group, error)


def _without(seq: int) -> Callable[[list[tuple[float, int]]], list[tuple[float, int]]]:
    return lambda live: [(t, s) for t, s in live if s != seq]
