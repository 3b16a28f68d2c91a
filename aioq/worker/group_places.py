"""The places of a worker's jobs in their groups' limits, changed in batches.

Per group, the shared state is the lease log ``group.<group>.running`` (one entry per running
job: expiry, stream sequence) and the token log ``group.<group>.rate`` (a `SharedLimit`).
Admissions, releases and renewals asked for while a change is under way wait for it, then
go together in the next one: one read and one compare-and-set for any number of jobs, and
no two changes of one group from one worker racing each other.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from aioq.backend import Control
from aioq.groups import GroupLimit
from aioq.worker.limits import SharedLimit

__all__ = ["GroupPlaces"]

log = logging.getLogger("aioq.worker")

_CAS_ATTEMPTS: Final = 8
# Shortest put-back: a job whose group has a token back in a moment still leaves the worker.
_MIN_DELAY_S: Final = 0.01
# Put-back delay while the limits bucket does not answer (no start is allowed meanwhile).
OUTAGE_DELAY_S: Final = 1.0

Lease = tuple[float, int]
"""(expiry in unix seconds, stream sequence) of one running job."""


# (stream sequence, lease seconds) of jobs asking for a place.
_Wanted = list[tuple[int, float]]


class _Leases(msgspec.Struct):
    """The value of ``group.<group>.running``."""

    leases: list[Lease] = msgspec.field(default_factory=list)


_decoder: Final = msgspec.json.Decoder(_Leases)
_encoder: Final = msgspec.json.Encoder()


@dataclass(slots=True, eq=False)
class _Asked:
    """What the jobs of one group asked for since the last change."""

    admits: list[tuple[int, float, asyncio.Future[float | None]]] = field(default_factory=list)
    releases: set[int] = field(default_factory=set)
    done: list[asyncio.Future[None]] = field(default_factory=list)
    renew: bool = False


class GroupPlaces:
    """Takes, gives back and renews the places of this worker's jobs in their groups."""

    def __init__(self, control: Control, clock: Callable[[], float]) -> None:
        self.control = control
        self.clock = clock  # the rate limits' clock; lease expiries are wall-clock time
        #: Places held here: group -> {stream sequence: lease seconds}.
        self.held: dict[str, dict[int, float]] = {}
        self._asked: dict[str, _Asked] = {}
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._rates: dict[str, SharedLimit] = {}
        self._failures = 0

    async def take(self, group: str, limit: GroupLimit, seq: int, lease: float) -> float | None:
        """Take a place (and a token) for job `seq`: None if taken, else seconds to wait."""
        future: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self._ask(group, limit).admits.append((seq, lease, future))
        return await future

    async def release(self, group: str, limit: GroupLimit, seq: int) -> None:
        """Give back the place of job `seq`, if it holds one."""
        places = self.held.get(group)
        if places is None or places.pop(seq, None) is None:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asked = self._ask(group, limit)
        asked.releases.add(seq)
        asked.done.append(future)
        await future

    def renew(self, limits: Callable[[str], GroupLimit | None]) -> None:
        """Push the expiry of every place held here one lease ahead (in the background)."""
        for group, places in list(self.held.items()):
            limit = limits(group)
            if places and limit is not None:
                self._ask(group, limit).renew = True

    def _ask(self, group: str, limit: GroupLimit) -> _Asked:
        asked = self._asked.setdefault(group, _Asked())
        if group not in self._busy:
            task = asyncio.create_task(self._serve(group, limit), name=f"aioq-group-{group}")
            self._busy[group] = task
        return asked

    async def _serve(self, group: str, limit: GroupLimit) -> None:
        """Apply what the group's jobs ask for, a batch at a time, until nothing is left."""
        try:
            while True:
                await asyncio.sleep(0)  # let the jobs fetched together ask first
                asked = self._asked.pop(group, None)
                if asked is None:
                    return
                await self._apply(group, limit, asked)
        finally:
            self._busy.pop(group, None)

    async def _apply(self, group: str, limit: GroupLimit, asked: _Asked) -> None:
        try:
            outcomes = await self._change(group, limit, asked)
            self._failures = 0
        except Exception as e:
            self._failures += 1
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(level, "group %s: shared group limits unavailable (%s)", group, e)
            outcomes = {seq: OUTAGE_DELAY_S for seq, _, _ in asked.admits}
        places = self.held.setdefault(group, {})
        for seq, lease, future in asked.admits:
            wait = outcomes.get(seq)
            if wait is None and limit.max_running is not None:
                places[seq] = lease
            if not future.done():
                future.set_result(wait)
        if not places:
            self.held.pop(group, None)
        for done in asked.done:
            if not done.done():
                done.set_result(None)

    async def _change(self, group: str, limit: GroupLimit, asked: _Asked) -> dict[int, float]:
        """One batch: the wait of each job not admitted (admitted jobs are left out)."""
        waits: dict[int, float] = {}
        wanted = [(seq, lease) for seq, lease, _ in asked.admits]
        if limit.max_running is None:
            await self._tokens(group, limit, wanted, waits)
            return waits
        tokens = limit.rate_limit is None
        for _ in range(_CAS_ATTEMPTS):
            live, revision = await self._read(group)
            gone = asked.releases | {seq for seq, _ in wanted}
            live = [(t, s) for t, s in live if s not in gone]
            room = max(0, limit.max_running - len(live))
            for seq, _ in wanted[room:]:
                waits[seq] = limit.recheck
            admitted = wanted[:room]
            if not tokens and admitted:
                admitted = await self._tokens(group, limit, admitted, waits)
                wanted, tokens = admitted, True  # a retry keeps only the jobs with a token
            if asked.renew:
                live = self._renewed(group, live)
            now = time.time()
            live += [(now + lease, seq) for seq, lease in admitted]
            live = list({seq: (t, seq) for t, seq in live}.values())  # one place per job
            if await self._write(group, live, revision):
                return waits
        return {seq: limit.recheck for seq, _, _ in asked.admits}  # others kept winning

    async def _tokens(
        self,
        group: str,
        limit: GroupLimit,
        wanted: list[tuple[int, float]],
        waits: dict[int, float],
    ) -> list[tuple[int, float]]:
        """The jobs of `wanted` that got a rate-limit token; the others' waits go in `waits`."""
        if limit.rate_limit is None or not wanted:
            return wanted
        got, wait = await self._rate(group, limit).take(len(wanted))
        # No token in sight (a limit of 0): look again after `recheck`.
        delay = max(wait, _MIN_DELAY_S) if math.isfinite(wait) else limit.recheck
        for seq, _ in wanted[got:]:
            waits[seq] = delay
        return wanted[:got]

    def _renewed(self, group: str, live: list[Lease]) -> list[Lease]:
        """`live` with this worker's places one lease ahead.

        A place that lapsed (the event loop was blocked) comes back too: its job still runs.
        """
        mine = self.held.get(group, {})
        now = time.time()
        others = [(t, s) for t, s in live if s not in mine]
        return others + [(now + lease, seq) for seq, lease in mine.items()]

    def _rate(self, group: str, limit: GroupLimit) -> SharedLimit:
        rate = self._rates.get(group)
        assert limit.rate_limit is not None
        if rate is None or (rate.limit, rate.interval) != (limit.rate_limit, limit.rate_interval):
            key = f"group.{group}.rate"
            rate = SharedLimit(
                self.control, key, limit.rate_limit, limit.rate_interval, clock=self.clock
            )
            self._rates[group] = rate
        return rate

    async def _read(self, group: str) -> tuple[list[Lease], int]:
        data, revision = await self.control.read_limit(f"group.{group}.running")
        if not data:
            return [], revision
        try:
            entries = _decoder.decode(data).leases
        except msgspec.DecodeError:
            log.warning("group %s: unreadable running places, starting afresh", group)
            return [], revision
        now = time.time()
        return [(t, s) for t, s in entries if t > now], revision

    async def _write(self, group: str, live: list[Lease], revision: int) -> bool:
        data = _encoder.encode(_Leases(live))
        return await self.control.write_limit(f"group.{group}.running", data, revision)
