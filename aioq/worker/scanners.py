"""Scanners: periodic coroutines that run inside a worker and live and die with it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aioq.errors import ConfigError
from aioq.options import seconds

__all__ = ["Scanner", "ScannerFunction"]

log = logging.getLogger("aioq.worker")

ScannerFunction = Callable[[], Awaitable[None]]
"""A scanner body: ``async def scan() -> None``."""


@dataclass(frozen=True, slots=True)
class Scanner:
    """Runs `fn` when the worker starts, then `interval` seconds after each run ends.

    A run that raises is logged and the next one comes on time; a worker that stops cancels
    the run in progress (the coroutine sees `asyncio.CancelledError`).
    """

    fn: ScannerFunction
    interval: float
    name: str

    @classmethod
    def build(cls, fn: ScannerFunction, interval: float, name: str | None = None) -> Scanner:
        """Validate a scanner definition."""
        if not callable(fn):
            raise ConfigError(f"a scanner is an async function, got {fn!r}")
        every = seconds(interval, "scanner interval")
        assert every is not None
        return cls(fn, every, name or getattr(fn, "__qualname__", None) or repr(fn))

    async def run(self) -> None:
        """Run until cancelled."""
        while True:
            try:
                await self.fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scanner %s failed; it runs again in %gs", self.name, self.interval)
            await asyncio.sleep(self.interval)
