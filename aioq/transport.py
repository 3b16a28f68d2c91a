"""Former home of the seam's Protocols; they live in `aioq.backend`, grouped by concept.

Kept so that existing imports keep working. `aioq._nats.NatsBroker` implements the seam on
JetStream, `aioq.testing.MemoryBroker` in memory.
"""

from aioq.backend import (
    Broker,
    ConsumerGoneError,
    Delivery,
    EventListener,
    HeldJob,
    HeldJobs,
    Inspection,
    JobSource,
    OutgoingJob,
    StoredMessage,
)

__all__ = [
    "Broker",
    "ConsumerGoneError",
    "Delivery",
    "EventListener",
    "HeldJob",
    "HeldJobs",
    "Inspection",
    "JobSource",
    "OutgoingJob",
    "StoredMessage",
]
