"""Keeps a repeated log message to at most one line per interval."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["LogThrottle", "describe"]


class LogThrottle:
    """Decides whether a message may be logged now, counting the repeats it held back.

    A connection that drops reports the same error from its reader and its writer within
    milliseconds; one line says it.
    """

    def __init__(self, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, message: str) -> int | None:
        """None to drop `message`; else how many repeats of it were dropped since its last line."""
        now = self.clock()
        last = self._last.get(message)
        if last is not None and now - last < self.interval:
            self._held[message] = self._held.get(message, 0) + 1
            return None
        if len(self._last) > 256:  # messages carry addresses and codes; keep the map small
            self._last = {m: t for m, t in self._last.items() if now - t < self.interval}
        self._last[message] = now
        return self._held.pop(message, 0)


def describe(error: BaseException) -> str:
    """An error as one log phrase: its type, and its text if it has one."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
