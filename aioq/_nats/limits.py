"""A refused publish of a job as one clear error: a full queue, a full stream, or another."""

from __future__ import annotations

from nats.js.errors import APIError

from aioq.errors import EnqueueError, QueueFullError

__all__ = ["full_or_failed"]

# The server's descriptions of a publish refused by a stream limit (with discard: new).
_QUEUE_FULL = "maximum messages per subject exceeded"
_STREAM_FULL = ("maximum messages exceeded", "maximum bytes exceeded", "insufficient resources")


def full_or_failed(error: APIError, queue: str, job_id: str) -> EnqueueError:
    """The error to raise for a publish of job `job_id` on `queue` that the server refused."""
    text = (error.description or "").lower()
    if _QUEUE_FULL in text:
        return QueueFullError(
            f"queue {queue!r} is full: it holds its max_queued jobs already, so job {job_id} "
            "was not stored; enqueue it again (same id) once workers have caught up, or raise "
            "max_queued"
        )
    if any(s in text for s in _STREAM_FULL):
        return QueueFullError(
            f"the jobs stream is full ({error.description}), so job {job_id} on queue "
            f"{queue!r} was not stored; free space or raise the server's JetStream limits "
            "(`aioq doctor` shows them)"
        )
    return EnqueueError(
        f"cannot enqueue job {job_id} on queue {queue!r}: {type(error).__name__}: {error}; "
        "retrying with the same job id is safe"
    )
