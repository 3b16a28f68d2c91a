"""The seam between aioq's logic and a broker, as Protocols grouped by concept (no I/O here).

jobs (publish, pull, settle, find), records (job state), events (lifecycle events, aborts),
dead (dead letters), held (delayed jobs), history (succeeded jobs kept for replay),
control (rate limits, pauses, repeatable ticks), workers (heartbeat registry), waiting (jobs
waiting for dependencies) and inspection
(read-only views for operators and dashboards);
`Broker` is a connection holding one of each as attributes.
"""

from aioq.backend.broker import Broker
from aioq.backend.control import Control
from aioq.backend.dead import DeadLetterStore, StoredMessage
from aioq.backend.events import EventListener, Events
from aioq.backend.held import HeldJob, HeldJobs, HeldStore
from aioq.backend.history import History
from aioq.backend.inspection import HeldEntry, Inspection, QueueStats
from aioq.backend.jobs import (
    ConsumerGoneError,
    Delivery,
    Jobs,
    JobSource,
    LevelWatch,
    OutgoingJob,
)
from aioq.backend.records import Records
from aioq.backend.waiting import WaitingStore
from aioq.backend.workers import WorkerRegistry

__all__ = [
    "Broker",
    "ConsumerGoneError",
    "Control",
    "DeadLetterStore",
    "Delivery",
    "EventListener",
    "Events",
    "HeldEntry",
    "HeldJob",
    "HeldJobs",
    "HeldStore",
    "History",
    "Inspection",
    "JobSource",
    "Jobs",
    "LevelWatch",
    "OutgoingJob",
    "QueueStats",
    "Records",
    "StoredMessage",
    "WaitingStore",
    "WorkerRegistry",
]
