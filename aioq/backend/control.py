"""Shared control state: rate limits, queue pauses, repeatable ticks and unique keys."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["Control"]


class Control(Protocol):
    """State every worker and scheduler of an app shares and changes by compare-and-set."""

    async def read_limit(self, queue: str) -> tuple[bytes | None, int]:
        """The shared rate-limit state of `queue` and its revision (0: none yet)."""
        ...

    async def write_limit(self, queue: str, data: bytes, revision: int) -> bool:
        """Replace the state if it is still at `revision`; False if someone else wrote first."""
        ...

    async def pause(self, queue: str, until: datetime | None) -> None:
        """Stop every worker of `queue` from receiving jobs, until `until` or resumed."""

    async def resume(self, queue: str) -> None:
        """Undo `pause`."""

    async def paused_until(self, queue: str) -> datetime | None:
        """When the pause of `queue` ends, or None if it is not paused."""
        ...

    async def last_tick(self, name: str) -> float | None:
        """The latest tick recorded as fired for repeatable `name`, or None."""
        ...

    async def record_tick(self, name: str, tick: float) -> None:
        """Record `tick` as fired for repeatable `name`, unless a later one is recorded."""

    async def read_unique(self, key: str) -> tuple[bytes | None, int]:
        """The holder of unique key `key` and its revision (0: free)."""
        ...

    async def write_unique(self, key: str, data: bytes, revision: int) -> bool:
        """Set the holder if the key is still at `revision` (0: free); False if it moved."""
        ...

    async def delete_unique(self, key: str, revision: int) -> bool:
        """Free the key if it is still at `revision`; False if it moved."""
        ...
