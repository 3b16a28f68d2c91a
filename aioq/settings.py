"""`NatsSettings`: how an app reaches its NATS server(s); plain values, no connection."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

__all__ = ["NatsSettings"]


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """How to reach the NATS server(s)."""

    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    name: str | None = None
    credentials: str | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    connect_timeout: float = 2.0
