"""History: the messages of jobs that succeeded, kept for a while so they can be replayed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from aioq.backend.dead import StoredMessage

__all__ = ["History"]


class History(Protocol):
    """Keeping and reading back the messages of succeeded jobs, per queue."""

    async def keep(self, queue: str, job_id: str, data: bytes, retention: float) -> None:
        """Store the message of job `job_id` that succeeded on `queue`, for `retention` seconds."""

    def list(self, queue: str) -> AsyncIterator[StoredMessage]:
        """The kept messages of `queue`, oldest first (lazily); each `time` is when it was kept."""
        ...
