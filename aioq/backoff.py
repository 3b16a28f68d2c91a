"""Retry delays: exponential with jitter and a cap, fixed lists, or a function of the attempt."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from aioq.errors import ConfigError

__all__ = ["Backoff", "BackoffLike", "resolve_backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``min(cap, base * factor ** (attempt - 1))``, then jittered.

    `jitter` spreads each delay uniformly over ``delay * (1 ± jitter)`` so that jobs which failed
    together do not all come back at the same instant.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.cap < 0 or not 0 <= self.jitter <= 1:
            raise ConfigError(
                f"invalid backoff {self}: need base >= 0, factor >= 1, cap >= 0, 0 <= jitter <= 1"
            )

    def __call__(self, attempt: int) -> float:
        """Delay in seconds before the retry that follows failed attempt `attempt` (1-based)."""
        exponent = min(max(attempt - 1, 0), 64)
        delay = min(self.cap, self.base * self.factor**exponent)
        if self.jitter:
            delay *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, min(self.cap, delay))


BackoffLike = Backoff | float | timedelta | Sequence[float] | Callable[[int], float]
"""What `backoff=` accepts: a `Backoff`, a fixed delay, a list indexed by attempt, or a function."""


def resolve_backoff(value: BackoffLike | None) -> Callable[[int], float]:
    """Turn any accepted `backoff=` value into a function from attempt to seconds."""
    if value is None:
        return Backoff()
    if isinstance(value, Backoff):
        return value
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float):
        fixed = float(value)
        if fixed < 0:
            raise ConfigError(f"backoff must be >= 0 seconds, got {fixed}")
        return lambda _attempt: fixed
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        delays = [float(v) for v in value]
        if not delays or any(d < 0 for d in delays):
            raise ConfigError(f"backoff list must be non-empty and >= 0, got {list(value)}")
        return lambda attempt: delays[min(max(attempt - 1, 0), len(delays) - 1)]
    if callable(value):
        return value
    raise ConfigError(
        f"unsupported backoff {value!r}: use Backoff(...), seconds, a list or a function"
    )
