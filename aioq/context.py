"""`Context`: what a running task knows about its job and its app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Protocol

from aioq.wire import JobRecord

if TYPE_CHECKING:
    from aioq.app import Aarq

__all__ = ["AfterJobHook", "BeforeJobHook", "Context", "Hook", "State"]


class State(SimpleNamespace):
    """App-wide shared state, filled by startup hooks (``state.http = httpx.AsyncClient()``)."""


class _HasState(Protocol):
    @property
    def state(self) -> State:
        """The app's shared state."""
        ...


class Context:
    """Passed as the first argument of every task.

    Attributes:
        job_id: The job's id, stable across retries: use it as an idempotency key.
        task: The task name.
        queue: The queue the job came from.
        attempt: 1 on the first delivery, then 2, 3, ... (counted by the broker).
        max_attempts: The attempt after which a failure is final.
        enqueued_at: When the broker stored the job (broker clock, UTC).
        state: The app's shared `State`.
        worker_id: Id of the worker running the job.
        app: The app the task belongs to.
    """

    __slots__ = (
        "_on_progress",
        "app",
        "attempt",
        "enqueued_at",
        "job_id",
        "max_attempts",
        "queue",
        "state",
        "task",
        "worker_id",
    )

    def __init__(
        self,
        *,
        app: _HasState,
        job_id: str,
        task: str,
        queue: str,
        attempt: int,
        max_attempts: int,
        enqueued_at: datetime,
        worker_id: str,
    ) -> None:
        # The worker knows its app through a narrow interface; the app it runs is an `Aarq`.
        self.app: Aarq = app  # type: ignore[assignment]
        self.job_id = job_id
        self.task = task
        self.queue = queue
        self.attempt = attempt
        self.max_attempts = max_attempts
        self.enqueued_at = enqueued_at
        self.state: State = app.state
        self.worker_id = worker_id
        self._on_progress: Callable[[float, str | None], Awaitable[None]] | None = None

    async def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the job is (0.0 to 1.0), with an optional note.

        Visible in `Job.status()` and as a ``progress`` event. Updates closer together than a
        quarter of a second are dropped, so calling it in a tight loop is fine.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress must be between 0.0 and 1.0, got {fraction}")
        if self._on_progress is not None:
            await self._on_progress(fraction, message)

    def __repr__(self) -> str:
        return (
            f"Context(job_id={self.job_id!r}, task={self.task!r}, queue={self.queue!r}, "
            f"attempt={self.attempt})"
        )


Hook = Callable[[State], Awaitable[None]]
"""A startup or shutdown hook: ``async def hook(state) -> None``."""
BeforeJobHook = Callable[[Context], Awaitable[None]]
"""Runs before each attempt: ``async def hook(ctx) -> None``."""
AfterJobHook = Callable[[Context, JobRecord], Awaitable[None]]
"""Runs after each attempt is settled: ``async def hook(ctx, record) -> None``."""
