"""An in-memory broker behind `aioq.transport`: aioq's own worker code, without a server.

See `MemoryBroker`; `aioq.testing.FakeClock` drives its time.
"""

from aioq.testing.memory._broker import MemoryBroker
from aioq.testing.memory.jobs import MemoryDelivery, MemorySource

__all__ = ["MemoryBroker", "MemoryDelivery", "MemorySource"]
