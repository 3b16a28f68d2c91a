"""Where rate limits meet the worker: the gate every job start of one queue passes.

Two limits can apply to a start: the worker's own (`TokenBucket`, in memory) and the queue's
(`SharedLimit`, a grant log in the ``<prefix>-limits`` KV bucket that every worker of the
queue updates with compare-and-set, so the limit holds for all of them together).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec

from aioq.backend import Control
from aioq.ratelimit import Grant, TokenBucket, free_tokens, next_token_in, prune

__all__ = ["SharedLimit", "StartGate"]

log = logging.getLogger("aioq.worker")

# Compare-and-set attempts per take before backing off; each failure means another worker
# took tokens in between, so the next read sees fresh state.
_CAS_ATTEMPTS: Final = 8
# Random spread added to waits on a shared limit, so the workers waiting for the same
# returning tokens do not all ask in the same millisecond.
_JITTER_S: Final = 0.005
# Longest sleep before re-checking a limit that has no tokens in sight (limit 0): a change
# made elsewhere (another process's app config) is seen this quickly.
_RECHECK_S: Final = 1.0
# Waits between attempts while the limits bucket does not answer (a cluster electing a
# leader or short of its quorum): no start is allowed meanwhile, and none is lost.
_OUTAGE_WAITS_S: Final = (0.2, 0.5, 1.0, 2.0)


class _State(msgspec.Struct):
    """The value of a queue's key in the limits bucket."""

    grants: list[tuple[float, int]] = msgspec.field(default_factory=list)
    limit: int | None = None
    interval: float | None = None


_decoder: Final = msgspec.json.Decoder(_State)
_encoder: Final = msgspec.json.Encoder()


class SharedLimit:
    """At most `limit` starts per `interval` over every worker of one queue.

    The state is the log of recent grants (time, tokens): a worker reads it, drops the grants
    older than one interval, and appends its own only if the bucket is still at the revision
    it read. Times are the workers' wall clocks, so keep them in sync (NTP).
    """

    def __init__(
        self,
        control: Control,
        queue: str,
        limit: int,
        interval: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.control = control
        self.queue = queue
        self.limit = limit
        self.interval = interval
        self.clock = clock
        self._failures = 0

    async def _guarded(
        self, attempt: Callable[[], Awaitable[tuple[int, float]]]
    ) -> tuple[int, float]:
        """Run `attempt`; if the bucket does not answer, allow no start and say how long to wait.

        The first failure of an outage is a warning; the next ones, until it works again,
        are debug lines.
        """
        try:
            result = await attempt()
        except Exception as e:
            self._failures += 1
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(level, "queue %s: shared rate limit unavailable (%s), waiting", self.queue, e)
            return 0, _OUTAGE_WAITS_S[min(self._failures, len(_OUTAGE_WAITS_S)) - 1]
        if self._failures:
            log.warning(
                "queue %s: shared rate limit works again after %d failed attempts",
                self.queue,
                self._failures,
            )
            self._failures = 0
        return result

    async def _read(self) -> tuple[list[Grant], int]:
        data, revision = await self.control.read_limit(self.queue)
        if not data:
            return [], revision
        try:
            state = _decoder.decode(data)
        except msgspec.DecodeError:
            log.warning("queue %s: unreadable shared rate-limit state, starting afresh", self.queue)
            return [], revision
        return [(t, k) for t, k in state.grants], revision

    async def available(self) -> tuple[int, float]:
        """Tokens free now, and seconds until one is free if none is."""
        return await self._guarded(self._available)

    async def _available(self) -> tuple[int, float]:
        grants, _ = await self._read()
        now = self.clock()
        live = prune(grants, now, self.interval)
        free = free_tokens(live, self.limit)
        return free, 0.0 if free else next_token_in(live, now, self.interval, self.limit)

    async def take(self, want: int) -> tuple[int, float]:
        """Take up to `want` tokens; returns (taken, seconds to wait if none was taken)."""
        return await self._guarded(lambda: self._take(want))

    async def _take(self, want: int) -> tuple[int, float]:
        for _ in range(_CAS_ATTEMPTS):
            grants, revision = await self._read()
            now = self.clock()
            live = prune(grants, now, self.interval)
            free = free_tokens(live, self.limit)
            if free == 0:
                return 0, next_token_in(live, now, self.interval, self.limit)
            got = min(want, free)
            state = _State(grants=[*live, (now, got)], limit=self.limit, interval=self.interval)
            if await self.control.write_limit(self.queue, _encoder.encode(state), revision):
                return got, 0.0
        return 0, _JITTER_S  # lost every race: another worker is taking tokens right now


class StartGate:
    """Admits job starts of one queue under the worker's limit and the queue's shared one.

    `room` tells how many jobs to fetch (waiting while no start is allowed); `take` takes the
    tokens for jobs in hand (waiting if another queue or worker took them first). Waits for
    tokens run on `sleep`, the clock the limits count on.
    """

    def __init__(
        self,
        local: TokenBucket | None,
        shared: SharedLimit | None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.local = local
        self.shared = shared
        self._clock_sleep = sleep
        self._changed = asyncio.Event()

    @property
    def limited(self) -> bool:
        """True if any limit applies."""
        return (self.local is not None and self.local.limit is not None) or self.shared is not None

    def changed(self) -> None:
        """Wake waiters: a limit was reconfigured."""
        self._changed.set()

    async def _sleep(self, seconds: float) -> None:
        self._changed.clear()
        if math.isinf(seconds):
            # No token in sight: re-check on the real clock for changes made elsewhere.
            slept = asyncio.ensure_future(asyncio.sleep(_RECHECK_S))
        else:
            slept = asyncio.ensure_future(self._until_tokens(seconds))
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            await asyncio.wait([slept, changed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            slept.cancel()
            changed.cancel()

    async def _until_tokens(self, seconds: float) -> None:
        await self._clock_sleep(seconds)
        if self.shared is not None:
            # Real time, not the limits' clock: it spreads the asks of real workers.
            await asyncio.sleep(random.uniform(0, _JITTER_S))

    async def room(self, want: int) -> int:
        """Wait until at least one start is allowed; return how many (at most `want`)."""
        while True:
            allowed, wait = want, 0.0
            if self.local is not None:
                free = self.local.available()
                if free is not None:
                    allowed = min(allowed, free)
                    if free == 0:
                        wait = self.local.wait_time()
            if allowed and self.shared is not None:
                free, wait = await self.shared.available()
                allowed = min(allowed, free)
            if allowed > 0:
                return allowed
            await self._sleep(wait)

    async def take(self, want: int) -> int:
        """Take tokens for up to `want` starts, waiting until at least one is allowed."""
        while True:
            got = want
            if self.local is not None:
                got = self.local.take(want)
                if got == 0:
                    await self._sleep(self.local.wait_time())
                    continue
            if self.shared is not None:
                shared_got, wait = await self.shared.take(got)
                if self.local is not None and shared_got < got:
                    self.local.give_back(got - shared_got)
                if shared_got == 0:
                    await self._sleep(wait)
                    continue
                got = shared_got
            return got
