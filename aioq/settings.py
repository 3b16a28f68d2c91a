"""`NatsSettings`: how an app reaches its NATS server(s); plain values, no connection."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

__all__ = ["NatsSettings", "redact_url", "redact_urls"]


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """How to reach the NATS server(s).

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

    def __repr__(self) -> str:
        # Passwords and tokens stay out of logs and tracebacks that print the settings.
        secret = "'***'"
        return (
            f"NatsSettings(servers={redact_urls(self.servers)!r}, name={self.name!r}, "
            f"credentials={self.credentials!r}, token={secret if self.token else None}, "
            f"user={self.user!r}, password={secret if self.password else None}, "
            f"tls={self.tls!r}, tls_ca={self.tls_ca!r}, tls_cert={self.tls_cert!r}, "
            f"tls_key={self.tls_key!r}, nkey_seed={self.nkey_seed!r}, "
            f"inbox_prefix={self.inbox_prefix!r})"
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
