"""Former name of `aioq.inspection`, kept so that existing imports keep working."""

from aioq.inspection import (
    EventStream,
    QueueStats,
    WorkerStatus,
    delete_queue_consumer,
    queue_stats,
    worker_statuses,
)

__all__ = [
    "EventStream",
    "QueueStats",
    "WorkerStatus",
    "delete_queue_consumer",
    "queue_stats",
    "worker_statuses",
]
