"""`NatsSettings`: how an app reaches its NATS server(s); plain values, no connection."""

from __future__ import annotations

import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field

from aioq.errors import ConfigError

__all__ = ["MAX_REPLICAS", "NatsSettings", "Replication", "validate_domain"]

#: JetStream keeps at most 5 copies of a stream.
MAX_REPLICAS = 5


@dataclass(frozen=True, slots=True)
class Replication:
    """How many copies of each stream and bucket the servers keep, and on which nodes.

    `replicas` None creates with one copy and leaves existing streams as they are; a number
    creates with that many and changes existing streams to it. `tags` pin new streams to the
    servers carrying every tag (``server_tags`` in their configs).
    """

    replicas: int | None = None
    tags: tuple[str, ...] = ()

    @classmethod
    def build(cls, replicas: int | None, tags: Sequence[str] | None) -> Replication:
        """Validate the app's `replicas=` and `placement_tags=` arguments."""
        if replicas is not None and (
            isinstance(replicas, bool)
            or not isinstance(replicas, int)
            or not 1 <= replicas <= MAX_REPLICAS
        ):
            raise ConfigError(
                f"replicas must be an integer from 1 to {MAX_REPLICAS} (3 survives the loss "
                f"of one node), got {replicas!r}"
            )
        if isinstance(tags, str):
            raise ConfigError(f"placement_tags takes a list of tags, got the string {tags!r}")
        found = tuple(tags or ())
        for tag in found:
            if not isinstance(tag, str) or not tag.strip():
                raise ConfigError(f"placement tags must be non-empty strings, got {tag!r}")
        return cls(replicas, found)

    @property
    def count(self) -> int:
        """The replica count new streams get."""
        return self.replicas or 1


def validate_domain(domain: str | None) -> str | None:
    """Check a JetStream domain name: one subject token (no dots, spaces or wildcards)."""
    if domain is None:
        return None
    if not isinstance(domain, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", domain):
        raise ConfigError(
            f"jetstream_domain must be a name of letters, digits, '-' and '_' (the domain in "
            f"the cluster's jetstream block), got {domain!r}"
        )
    return domain


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """How to reach the NATS server(s), and how to replicate what aioq stores there."""

    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    name: str | None = None
    credentials: str | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    connect_timeout: float = 2.0
    replication: Replication = field(default_factory=Replication)
    #: JetStream domain to address (a cluster reached through a leaf node); None: the local one.
    domain: str | None = None
