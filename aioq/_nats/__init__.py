"""The NATS JetStream transport: the only package that imports `nats`."""

from aioq._nats.broker import NatsBroker
from aioq.settings import NatsSettings

__all__ = ["NatsBroker", "NatsSettings"]
