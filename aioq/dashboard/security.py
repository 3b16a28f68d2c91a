"""HTTP basic auth, security headers, and the CSRF and same-origin checks of the dashboard."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any, Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CSRF_FIELD", "CSRF_HEADER", "Guard", "check_credentials", "cross_origin", "new_token"]

CSRF_HEADER: Final = "x-csrf-token"
CSRF_FIELD: Final = "csrf_token"

_HEADERS: Final = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        b"frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def new_token() -> str:
    """A fresh CSRF token (one per dashboard instance)."""
    return secrets.token_urlsafe(32)


def check_credentials(header: str | None, user: str, password: str) -> bool:
    """Whether an ``Authorization: Basic ...`` header carries `user` and `password`."""
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    given_user, _, given_password = decoded.partition(":")
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    password_ok = hmac.compare_digest(given_password.encode(), password.encode())
    return user_ok and password_ok


def cross_origin(request: Request) -> str | None:
    """Why `request` comes from another site (None if it does not, as far as it says)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        return "Sec-Fetch-Site says cross-site"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        return f"Origin {origin} is not this dashboard's ({host})"
    return None


class Guard:
    """ASGI middleware: basic auth on every request (if set) and security headers."""

    def __init__(self, app: ASGIApp, auth: tuple[str, str] | None = None) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the credentials, then pass the request on and add the headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.auth is not None:
            headers = dict(scope.get("headers", []))
            raw = headers.get(b"authorization")
            if not check_credentials(raw.decode("latin-1") if raw else None, *self.auth):
                await _unauthorized(send)
                return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _HEADERS if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


async def _unauthorized(send: Send) -> None:
    body = b"authentication required\n"
    headers: list[tuple[bytes, bytes]] = [
        (b"www-authenticate", b'Basic realm="aioq dashboard", charset="UTF-8"'),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *_HEADERS,
    ]
    start: MutableMapping[str, Any] = {
        "type": "http.response.start",
        "status": 401,
        "headers": headers,
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
