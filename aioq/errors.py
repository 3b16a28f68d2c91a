"""The exceptions aioq raises, and `Retry`, which tasks raise.

Every error derives from `AioqError`, so `except AioqError` catches them all::

    AioqError
    ├── ConfigError                  bad option, queue or task name, duplicate task
    │   └── ServerNotFoundError      no nats-server binary to start an embedded server
    ├── BrokerError
    │   ├── BrokerUnavailableError   cannot reach NATS (names the URLs tried)
    │   ├── PermissionDeniedError    the server denied this user a subject (names it)
    │   └── ProvisioningError        a stream, consumer or bucket cannot be created or bound
    ├── EnqueueError                 the job could not be published
    │   ├── UnknownTaskError         names the task and the registered ones
    │   ├── ArgumentsError           arguments do not fit the task's signature or annotations
    │   ├── SerializationError       arguments are not JSON-encodable, or NaN/infinity
    │   ├── PayloadTooLargeError     encoded job larger than the server's max_payload
    │   ├── QueueFullError           the queue holds its `max_queued` jobs already
    │   └── PartialEnqueueError      some jobs of an `enqueue_many` batch were not stored
    └── JobError                     about one job
        ├── JobNotFoundError         no job with that id is known
        ├── JobFailedError           the job failed for good; carries the remote error
        ├── JobAbortedError          the job was aborted
        ├── JobExpiredError          the job expired before it started
        └── ResultTimeoutError       no outcome within the timeout (also a TimeoutError)

`Retry` is not an error: a task raises it to ask for another attempt.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aioq.job import Job
    from aioq.task import PreparedJob

__all__ = [
    "AioqError",
    "ArgumentsError",
    "BrokerError",
    "BrokerUnavailableError",
    "ConfigError",
    "EnqueueError",
    "JobAbortedError",
    "JobError",
    "JobExpiredError",
    "JobFailedError",
    "JobNotFoundError",
    "PartialEnqueueError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProvisioningError",
    "QueueFullError",
    "ResultTimeoutError",
    "Retry",
    "SerializationError",
    "ServerNotFoundError",
    "UnknownTaskError",
]


class AioqError(Exception):
    """Base class of every aioq error."""


class ConfigError(AioqError, ValueError):
    """An option, name or definition is invalid; raised where it is defined."""


class ServerNotFoundError(ConfigError):
    """No `nats-server` binary was found to start an embedded server."""


class BrokerError(AioqError):
    """NATS or JetStream refused or failed an operation."""


class BrokerUnavailableError(BrokerError, ConnectionError):
    """The NATS server cannot be reached."""


class PermissionDeniedError(BrokerError):
    """The NATS server denied this user a subject that the operation needs.

    Attributes:
        subject: The subject denied.
    """

    def __init__(self, message: str, subject: str) -> None:
        super().__init__(message)
        self.subject = subject


class ProvisioningError(BrokerError):
    """A stream, consumer or KV bucket cannot be created or bound."""


class EnqueueError(AioqError):
    """A job could not be enqueued."""


class UnknownTaskError(EnqueueError, LookupError):
    """No task of that name is registered on the app."""


class ArgumentsError(EnqueueError, TypeError):
    """The arguments do not fit the task's signature or its parameters' annotated types."""


class SerializationError(EnqueueError, TypeError):
    """The arguments cannot be encoded as JSON."""


class PayloadTooLargeError(EnqueueError):
    """The encoded job is larger than the server accepts."""


class QueueFullError(EnqueueError):
    """The queue holds as many jobs as its `max_queued` allows; nothing was stored."""


class PartialEnqueueError(EnqueueError):
    """Some jobs of an `enqueue_many` batch were not stored.

    Attributes:
        enqueued: Handles of the jobs that were stored.
        failed: ``(job, error)`` for each job that was not.

    Enqueueing the whole batch again is safe: stored jobs are deduplicated by id.
    """

    def __init__(
        self,
        message: str,
        enqueued: list[Job[Any]],
        failed: list[tuple[PreparedJob, BaseException]],
    ) -> None:
        super().__init__(message)
        self.enqueued = enqueued
        self.failed = failed


class JobError(AioqError):
    """Base class for errors about one job; `job_id` names it."""

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class JobNotFoundError(JobError, LookupError):
    """No job with that id is queued, held, running or on record."""


class JobFailedError(JobError):
    """The job failed for good (it is in the dead letters).

    Attributes:
        error_type: Qualified name of the exception the task raised (or why it could not run).
        error_message: Its message.
        remote_traceback: The traceback text from the worker.
    """

    def __init__(
        self, message: str, job_id: str, error_type: str, error_message: str, remote_traceback: str
    ) -> None:
        super().__init__(message, job_id)
        self.error_type = error_type
        self.error_message = error_message
        self.remote_traceback = remote_traceback


class JobAbortedError(JobError):
    """The job was aborted and will not run."""


class JobExpiredError(JobError):
    """The job waited longer than its ttl and was dropped without running."""


class ResultTimeoutError(JobError, TimeoutError):
    """The job had no outcome within the time given."""


class Retry(Exception):
    """Raised by a task to be retried, optionally after `delay` seconds.

    The attempt counts against the task's `retries`; once they are used up the job goes to
    the dead-letter stream as any failure would.
    """

    def __init__(self, delay: float | timedelta | None = None) -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if seconds is not None and seconds < 0:
            raise ConfigError(f"Retry delay must be >= 0 seconds, got {seconds}")
        self.delay: float | None = seconds
        super().__init__(f"retry requested (delay={seconds})")
