"""What `nats.connect` gets for TLS and authentication, built from `NatsSettings`."""

from __future__ import annotations

import importlib.util
import ssl
from pathlib import Path
from typing import Any

import nats.errors

from aioq.errors import ConfigError
from aioq.settings import NatsSettings

__all__ = ["auth_options", "connect_hint", "says_why", "tls_context"]


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """The TLS context: `settings.tls`, or one made from the CA, certificate and key files.

    None when nothing is set: ``tls://`` URLs then verify the server against the system's
    trusted CAs.

    Raises:
        ConfigError: both a context and files, a certificate without its key (or the
            reverse), or a file that is missing or not PEM.
    """
    s = settings
    if s.tls is not None:
        if s.tls_ca or s.tls_cert or s.tls_key:
            raise ConfigError(
                "pass either tls= (an SSLContext) or tls_ca/tls_cert/tls_key, not both"
            )
        return s.tls
    if not (s.tls_ca or s.tls_cert or s.tls_key):
        return None
    if bool(s.tls_cert) != bool(s.tls_key):
        raise ConfigError(
            "tls_cert and tls_key go together: a client certificate needs its private key"
        )
    ca = _existing(s.tls_ca, "TLS CA") if s.tls_ca else None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except ssl.SSLError as e:
        raise ConfigError(f"cannot load the TLS CA file {ca}: {e.reason or e}") from None
    if s.tls_cert and s.tls_key:
        cert = _existing(s.tls_cert, "TLS certificate")
        key = _existing(s.tls_key, "TLS key")
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as e:
            raise ConfigError(
                f"cannot load the TLS certificate {cert} with key {key}: {e.reason or e} "
                "(both PEM, the key unencrypted and matching the certificate)"
            ) from None
    return context


def auth_options(settings: NatsSettings) -> dict[str, Any]:
    """The keyword arguments of `nats.connect` for TLS and authentication."""
    s = settings
    options: dict[str, Any] = {
        "tls": tls_context(s),
        "token": s.token,
        "user": s.user,
        "password": s.password,
    }
    if s.credentials:
        options["user_credentials"] = _existing(s.credentials, "NATS credentials file")
    if s.nkey_seed:
        if s.credentials:
            raise ConfigError("pass either credentials (a .creds file) or nkey_seed, not both")
        options["nkeys_seed"] = _existing(s.nkey_seed, "NKey seed file")
    if s.credentials or s.nkey_seed:
        _require_nkeys()
    if s.inbox_prefix:
        options["inbox_prefix"] = s.inbox_prefix
    return options


_UNREACHABLE_HINT = "(is nats-server running? `aioq server` starts a local one)"


def connect_hint(error: BaseException) -> str:
    """What to check after a failed first connect, in parentheses."""
    text = str(error).lower()
    if isinstance(error, nats.errors.AuthorizationError) or "authorization" in text:
        return (
            "(the server refused the credentials: check the user and password, token, "
            "NKey seed or .creds file)"
        )
    if isinstance(error, ssl.SSLError) or "certificate" in text or "tls" in text:
        return (
            "(TLS failed: check the CA file that signed the server's certificate, the "
            "client certificate and key if the server requires one, and the tls:// URL)"
        )
    return _UNREACHABLE_HINT


def says_why(error: BaseException) -> bool:
    """Whether `error` names a cause (credentials, TLS) that a later reset would hide."""
    return connect_hint(error) != _UNREACHABLE_HINT


def _existing(path: str, what: str) -> str:
    if not Path(path).is_file():
        raise ConfigError(f"{what} {path} does not exist (or is not a file)")
    return path


def _require_nkeys() -> None:
    if importlib.util.find_spec("nkeys") is None:
        raise ConfigError(
            "NKey seeds and .creds files need the nkeys package: pip install 'aioq-nats[nkeys]'"
        )
