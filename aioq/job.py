"""`Job`: the handle `enqueue` returns."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Job"]

R = TypeVar("R")


class Job(Generic[R]):
    """A job that was enqueued.

    Attributes:
        id: The job id (also its JetStream dedupe id).
        task: The task name.
        queue: The queue it was published to.
        duplicate: True if a job with this id was already enqueued within the dedupe window,
            in which case this enqueue stored nothing.
    """

    __slots__ = ("duplicate", "id", "queue", "task")

    def __init__(self, id: str, task: str, queue: str, *, duplicate: bool = False) -> None:
        self.id = id
        self.task = task
        self.queue = queue
        self.duplicate = duplicate

    def __repr__(self) -> str:
        dup = ", duplicate=True" if self.duplicate else ""
        return f"Job(id={self.id!r}, task={self.task!r}, queue={self.queue!r}{dup})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and (self.id, self.queue) == (other.id, other.queue)

    def __hash__(self) -> int:
        return hash((self.id, self.queue))
