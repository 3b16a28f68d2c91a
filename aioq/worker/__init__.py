"""The worker: pulls jobs from JetStream and runs them."""

from aioq.worker._worker import Worker

__all__ = ["Worker"]
