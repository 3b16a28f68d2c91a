"""Group limits at the worker: the place a job of a limited group takes before it starts.

A job's group (``with_options(group=...)``) may have a rate limit and a cap on running jobs
(``app.group_limit``), held over every worker through the shared limits bucket
(`GroupPlaces`): a worker that dies stops renewing its jobs' places, so they come back
after one lease (the queue's ``ack_wait``).

A job over its group's limit is put back (``nak`` with a delay); its record counts the
put-back (`JobRecord.deferred`), so that the delivery is not one of its attempts. Jobs of no
group, or of a group without a limit, pass without any round trip.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from typing import Final

import msgspec

from aioq.backend import Broker, Delivery
from aioq.groups import GroupLimits
from aioq.wire import JobRecord, JobState, encode
from aioq.worker.attempt import job_id_of
from aioq.worker.group_places import GroupPlaces

__all__ = ["GroupGate"]

log = logging.getLogger("aioq.worker")

# Put-back delays get this much random spread, so that put-back jobs do not all return at once.
_SPREAD: Final = 0.2
# Jobs of one group that a worker's put-backs bring back per second, at most: a large
# backlog of a full group is spread out (its jobs wait longer), so that it does not come
# back faster than the worker can put it back, ahead of other groups' jobs.
_RETURNS_PER_S: Final = 500.0
# How long a worker trusts having seen a group full before it asks the bucket again.
_FULL_FOR_S: Final = 0.25
# Put-backs of a group are told at most this often, with their count.
_TELL_EVERY_S: Final = 60.0
_GROUP_KEY: Final = b'"group"'


class _Peek(msgspec.Struct):
    """The fields of a job message the gate reads; the rest is decoded when the job runs."""

    group: str | None = None
    id: str | None = None
    task: str | None = None
    unique_key: str | None = None


_peek: Final = msgspec.json.Decoder(_Peek)


class GroupGate:
    """Admits the jobs of limited groups, and keeps the places of those running here."""

    def __init__(self, limits: GroupLimits, broker: Broker) -> None:
        self.limits = limits
        self.broker = broker
        self.places = GroupPlaces(broker.control, broker.clock.time)
        self._full_until: dict[str, float] = {}
        # Per group: put-backs since the last line about them, and when that line was.
        self._told: dict[str, tuple[int, float]] = {}
        # Per group: when each job put back by this worker comes back (monotonic, a heap).
        self._returns: dict[str, list[float]] = {}

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
        if self._full_until.get(group, 0.0) > time.monotonic():
            wait: float | None = limit.recheck
        else:
            wait = await self.places.take(group, limit, delivery.seq, lease)
            if wait == limit.recheck:  # full (or no token in sight): spare the bucket a while
                self._full_until[group] = time.monotonic() + min(_FULL_FOR_S, limit.recheck)
        if wait is None:
            return True, group
        await self._put_back(delivery, queue, peek, self._spread(group, wait))
        self._tell(group)
        return False, group

    async def release(self, group: str, seq: int) -> None:
        """Give back the place of job `seq` of `group` (it ended, or went back)."""
        limit = self.limits.of(group)
        if limit is None or limit.max_running is None:
            return
        self._full_until.pop(group, None)
        try:
            await self.places.release(group, limit, seq)
        except Exception as e:  # the place comes back when its lease expires
            log.debug("group %s: cannot give back a running place: %s", group, e)

    async def keep(self, period: float) -> None:
        """Renew the places held here every `period` seconds, until cancelled."""
        while True:
            await asyncio.sleep(period)
            self.places.renew(self.limits.of)

    def _spread(self, group: str, wait: float) -> float:
        """The put-back delay: `wait`, or longer while many of the group's jobs are away."""
        now = time.monotonic()
        returns = self._returns.setdefault(group, [])
        while returns and returns[0] <= now:
            heapq.heappop(returns)
        wait = max(wait, len(returns) / _RETURNS_PER_S) * random.uniform(1.0, 1.0 + _SPREAD)
        heapq.heappush(returns, now + wait)
        return wait

    async def _put_back(self, delivery: Delivery, queue: str, peek: _Peek, wait: float) -> None:
        """Return the job to its queue for about `wait` seconds, its record counting it."""
        record = JobRecord(
            id=peek.id or job_id_of(None, delivery),
            state=JobState.QUEUED,
            task=peek.task,
            queue=queue,
            attempts=delivery.attempt - 1,
            enqueued_at=delivery.stored_at,
            seq=delivery.seq,
            deferred=delivery.delivered - delivery.attempt + 1,
            group=peek.group,
            unique_key=peek.unique_key,
        )
        try:
            await self.broker.records.put(record.id, encode(record))
        except Exception as e:  # the delivery then counts as an attempt, nothing worse
            log.debug("job %s: cannot record its put-back: %s", record.id, e)
        await delivery.nak(wait)

    def _tell(self, group: str) -> None:
        """One line when a group first goes over its limits, then one a minute at most."""
        count, since = self._told.get(group, (0, -_TELL_EVERY_S))
        now = time.monotonic()
        if now - since < _TELL_EVERY_S:
            self._told[group] = (count + 1, since)
            return
        self._told[group] = (0, now)
        if count:
            log.info("group %s: %d more jobs put back over its limits", group, count + 1)
        else:
            log.info("group %s: over its limits; its jobs are put back until they fit", group)
