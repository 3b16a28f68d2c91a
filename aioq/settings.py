"""`NatsSettings`: how an app reaches its NATS server(s); plain values, no connection."""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit, urlunsplit

from aioq.errors import ConfigError
from aioq.naming import validate_inbox_prefix

__all__ = [
    "MAX_REPLICAS",
    "ConnectionOptions",
    "NatsSettings",
    "Replication",
    "redact_url",
    "redact_urls",
    "server_list",
    "validate_domain",
]

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


class ConnectionOptions(TypedDict, total=False):
    """How an app reaches NATS, besides its servers: keywords of `Aarq` and `use_connection`.

    Each is described in `Aarq`'s docstring; None leaves the setting as it is.
    """

    name: str | None
    credentials: str | os.PathLike[str] | None
    token: str | None
    user: str | None
    password: str | None
    tls: ssl.SSLContext | None
    tls_ca: str | os.PathLike[str] | None
    tls_cert: str | os.PathLike[str] | None
    tls_key: str | os.PathLike[str] | None
    nkey_seed: str | os.PathLike[str] | None
    inbox_prefix: str | None
    connect_timeout: float | None


_OPTIONS = frozenset(ConnectionOptions.__annotations__)
# The options that name files.
_PATHS = frozenset({"credentials", "tls_ca", "tls_cert", "tls_key", "nkey_seed"})


def server_list(servers: str | Sequence[str]) -> list[str]:
    """Server URLs from one string (comma-separated) or a sequence of them."""
    urls = [servers] if isinstance(servers, str) else list(servers)
    urls = [u.strip() for url in urls for u in url.split(",") if u.strip()]
    if not urls:
        raise ConfigError("no NATS server URL given")
    return urls


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """How to reach the NATS server(s), and how to replicate what aioq stores there.

    TLS comes either as a ready `tls` context or as files: `tls_ca` (the CA that signed
    the server's certificate) and, for mutual TLS, `tls_cert` with `tls_key`.
    """

    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    name: str | None = None
    credentials: str | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    connect_timeout: float = 2.0
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    nkey_seed: str | None = None
    #: Subject prefix of this client's reply inboxes (nats-py's default: ``_INBOX``).
    inbox_prefix: str | None = None
    replication: Replication = field(default_factory=Replication)
    #: JetStream domain to address (a cluster reached through a leaf node); None: the local one.
    domain: str | None = None

    def connected_by(
        self, servers: str | Sequence[str] | None = None, **options: Unpack[ConnectionOptions]
    ) -> NatsSettings:
        """These settings, with `servers` and each option that is not None in their place."""
        unknown = options.keys() - _OPTIONS
        if unknown:  # as Python says it of a function without **options
            raise TypeError(f"got an unexpected keyword argument {min(unknown)!r}")
        given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        if servers is not None:
            given["servers"] = server_list(servers)
        for path in _PATHS.intersection(given):
            given[path] = os.fspath(given[path])
        if "inbox_prefix" in given:
            given["inbox_prefix"] = validate_inbox_prefix(given["inbox_prefix"])
        return dataclasses.replace(self, **given)

    def __repr__(self) -> str:
        # Passwords and tokens stay out of logs and tracebacks that print the settings.
        secret = "'***'"
        return (
            f"NatsSettings(servers={redact_urls(self.servers)!r}, name={self.name!r}, "
            f"credentials={self.credentials!r}, token={secret if self.token else None}, "
            f"user={self.user!r}, password={secret if self.password else None}, "
            f"tls={self.tls!r}, tls_ca={self.tls_ca!r}, tls_cert={self.tls_cert!r}, "
            f"tls_key={self.tls_key!r}, nkey_seed={self.nkey_seed!r}, "
            f"inbox_prefix={self.inbox_prefix!r}, replication={self.replication!r}, "
            f"domain={self.domain!r})"
        )


def redact_url(url: str) -> str:
    """`url` with the password (or token) of its ``user:password@`` part replaced by ``***``."""
    try:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None and parts.username is None:
        return url
    user = parts.username or ""
    # A lone ``token@`` is a secret too; a ``user:password@`` keeps the user name.
    userinfo = f"{user}:***" if parts.password is not None else "***"
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def redact_urls(urls: list[str]) -> list[str]:
    """`redact_url` of each URL."""
    return [redact_url(u) for u in urls]
