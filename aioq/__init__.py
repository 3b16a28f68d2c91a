"""aioq: an asyncio job queue on NATS JetStream.

The public API is re-exported here; everything else is internal.
"""

import logging

__version__ = "0.1.0"

from aioq.app import Aarq
from aioq.backoff import Backoff
from aioq.context import Context, State
from aioq.errors import (
    AioqError,
    ArgumentsError,
    BrokerError,
    BrokerUnavailableError,
    ConfigError,
    EnqueueError,
    PartialEnqueueError,
    PayloadTooLargeError,
    ProvisioningError,
    Retry,
    SerializationError,
    ServerNotFoundError,
    UnknownTaskError,
)
from aioq.job import Job
from aioq.task import PreparedJob, Task, TaskCall
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
    "EnqueueError",
    "Job",
    "PartialEnqueueError",
    "PayloadTooLargeError",
    "PreparedJob",
    "ProvisioningError",
    "Retry",
    "SerializationError",
    "ServerNotFoundError",
    "State",
    "Task",
    "TaskCall",
    "UnknownTaskError",
    "Worker",
    "__version__",
]
