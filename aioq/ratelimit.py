"""Rate limits on job starts: a token bucket whose tokens come back one interval after use.

Pure logic with an injectable clock; the worker applies it where jobs start, and the shared
per-queue limit stores the same grant log in a KV bucket.

A classic token bucket (capacity N, refilled continuously at N per interval) lets up to 2N
jobs start within one interval after an idle spell: the full bucket, then the refill. Here a
token spent at time t returns at t + interval, so any window of one interval holds at most N
starts, bursts reach N, and a busy queue still runs at N per interval.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import timedelta

from aioq.errors import ConfigError

__all__ = [
    "Grant",
    "TokenBucket",
    "check_rate",
    "free_tokens",
    "next_token_in",
    "prune",
    "running_cap",
]

Grant = tuple[float, int]
"""``(time, tokens)``: tokens taken at one moment; they return one interval later."""


def check_rate(limit: int | None, interval: float | timedelta) -> tuple[int | None, float]:
    """Validate a rate limit: `limit` starts (None: unlimited, 0: none) per `interval` seconds."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ConfigError(
            f"rate_limit must be an integer >= 0 (0 pauses) or None (unlimited), got {limit!r}"
        )
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else interval
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigError(f"rate_interval must be > 0 seconds, got {interval!r}")
    return limit, float(seconds)


def prune(grants: Iterable[Grant], now: float, interval: float) -> list[Grant]:
    """The grants whose tokens have not come back yet at `now`."""
    return [(t, k) for t, k in grants if t + interval > now]


def free_tokens(grants: Iterable[Grant], limit: int) -> int:
    """Tokens free given the live `grants`."""
    return max(0, limit - sum(k for _, k in grants))


def next_token_in(grants: Iterable[Grant], now: float, interval: float, limit: int) -> float:
    """Seconds until a token is free (0 if one is; infinity if the limit is 0)."""
    live = sorted(prune(grants, now, interval))
    if limit <= 0:
        return math.inf
    if free_tokens(live, limit) > 0:
        return 0.0
    # Tokens come back oldest first; the first return may free more than one.
    return max(0.0, live[0][0] + interval - now)


class TokenBucket:
    """At most `limit` job starts in any window of `interval` seconds.

    Args:
        limit: Tokens; None means unlimited and 0 admits nothing (a paused worker).
        interval: Seconds after which a spent token comes back.
        clock: Monotonic time source, injectable for tests.
    """

    def __init__(
        self,
        limit: int | None,
        interval: float | timedelta = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.interval = check_rate(limit, interval)
        self.clock = clock
        self._grants: deque[Grant] = deque()
        self._used = 0

    def reconfigure(self, limit: int | None, interval: float | timedelta | None = None) -> None:
        """Change the limit (and interval) in place; tokens already spent stay spent."""
        self.limit, self.interval = check_rate(
            limit, self.interval if interval is None else interval
        )

    def _expire(self, now: float) -> None:
        while self._grants and self._grants[0][0] + self.interval <= now:
            self._used -= self._grants.popleft()[1]

    def available(self) -> int | None:
        """Tokens free now (None when unlimited)."""
        if self.limit is None:
            return None
        self._expire(self.clock())
        return max(0, self.limit - self._used)

    def take(self, want: int) -> int:
        """Take up to `want` tokens now; returns how many were taken (maybe 0)."""
        if want <= 0:
            return 0
        if self.limit is None:
            return want
        now = self.clock()
        self._expire(now)
        got = min(want, max(0, self.limit - self._used))
        if got:
            self._grants.append((now, got))
            self._used += got
        return got

    def give_back(self, count: int) -> None:
        """Return `count` tokens of the latest `take` that were not used after all."""
        while count > 0 and self._grants:
            t, k = self._grants.pop()
            back = min(k, count)
            self._used -= back
            count -= back
            if k > back:
                self._grants.append((t, k - back))

    def wait_time(self) -> float:
        """Seconds until a token is free: 0 if one is, infinity if the limit is 0."""
        if self.limit is None:
            return 0.0
        if self.limit == 0:
            return math.inf
        now = self.clock()
        self._expire(now)
        if self._used < self.limit:
            return 0.0
        return max(0.0, self._grants[0][0] + self.interval - now)


def running_cap(max_running: int | None, max_ack_pending: int | None) -> int | None:
    """The consumer's ``max_ack_pending`` for a queue's `max_running` (None: unchanged)."""
    if max_running is None:
        return max_ack_pending
    if isinstance(max_running, bool) or not isinstance(max_running, int) or max_running < 1:
        raise ConfigError(f"max_running must be a whole number >= 1, got {max_running!r}")
    if max_ack_pending is not None and max_ack_pending != max_running:
        raise ConfigError(
            "max_running is the consumer's max_ack_pending: give one of them, not both"
        )
    return max_running
