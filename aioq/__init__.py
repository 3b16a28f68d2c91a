"""aioq: an asyncio job queue on NATS JetStream.

The public API is re-exported here; everything else is internal.
"""

import logging

from aioq._version import __version__
from aioq.app import Aarq
from aioq.backoff import Backoff
from aioq.context import Context, State
from aioq.deadletter import DeadEntry, DeadLetters
from aioq.errors import (
    AioqError,
    ArgumentsError,
    BrokerError,
    BrokerUnavailableError,
    ConfigError,
    EnqueueError,
    JobAbortedError,
    JobError,
    JobExpiredError,
    JobFailedError,
    JobNotFoundError,
    PartialEnqueueError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ProvisioningError,
    QueueFullError,
    ResultTimeoutError,
    Retry,
    SerializationError,
    ServerNotFoundError,
    UnknownTaskError,
)
from aioq.flows import Flow, Signature
from aioq.inspection import QueueStats, WorkerStatus
from aioq.job import Job
from aioq.repeatable import Missed, Repeatable
from aioq.runner import run_scheduler, run_worker, start_worker, worker_loop
from aioq.scheduler import Scheduler
from aioq.task import PreparedJob, Task, TaskCall
from aioq.wire import DeadLetter, DeadReason, ErrorInfo, Event, EventKind, JobRecord, JobState
from aioq.worker import Worker

logging.getLogger("aioq").addHandler(logging.NullHandler())

__all__ = [
    "Aarq",
    "AioqError",
    "ArgumentsError",
    "Backoff",
    "BrokerError",
    "BrokerUnavailableError",
    "ConfigError",
    "Context",
    "DeadEntry",
    "DeadLetter",
    "DeadLetters",
    "DeadReason",
    "EnqueueError",
    "ErrorInfo",
    "Event",
    "EventKind",
    "Flow",
    "Job",
    "JobAbortedError",
    "JobError",
    "JobExpiredError",
    "JobFailedError",
    "JobNotFoundError",
    "JobRecord",
    "JobState",
    "Missed",
    "PartialEnqueueError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PreparedJob",
    "ProvisioningError",
    "QueueFullError",
    "QueueStats",
    "Repeatable",
    "ResultTimeoutError",
    "Retry",
    "Scheduler",
    "SerializationError",
    "ServerNotFoundError",
    "Signature",
    "State",
    "Task",
    "TaskCall",
    "UnknownTaskError",
    "Worker",
    "WorkerStatus",
    "__version__",
    "run_scheduler",
    "run_worker",
    "start_worker",
    "worker_loop",
]
