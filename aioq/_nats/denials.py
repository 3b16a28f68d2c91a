"""Permission violations turned into one clear error for the request that caused them.

The server answers a publish to a denied subject with an asynchronous ``-ERR`` (which nats-py
hands to the error callback) and never replies, so a JetStream request would only time
out. `Denials` tracks a connection's open requests by subject; when the server reports a
violation for one of them (or for the reply inbox, which every request needs), that request
ends at once with a `PermissionDeniedError` naming the subject.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from aioq.errors import PermissionDeniedError
from aioq.permissions import describe_subject

__all__ = ["Denials", "parse_violation"]

# nats-py lower-cases the server's error text.
_VIOLATION = re.compile(r'permissions violation for (publish|subscription) to "([^"]+)"')
_HINT = "grant it in the server's config (`aioq permissions --role ROLE` prints each role's lists)"


def parse_violation(text: str) -> tuple[str, str] | None:
    """``(kind, subject)`` of a permission-violation error text, lower-cased, else None."""
    match = _VIOLATION.search(text.lower())
    return (match[1], match[2]) if match else None


class _Request:
    """A request awaited by `task`, or an async publish whose ack is `future`."""

    __slots__ = ("denied", "future", "subject", "task")

    def __init__(
        self,
        subject: str,
        task: asyncio.Task[Any] | None = None,
        future: asyncio.Future[Any] | None = None,
    ) -> None:
        self.subject = subject
        self.task = task
        self.future = future
        self.denied: PermissionDeniedError | None = None

    def end(self) -> None:
        if self.future is not None:
            if not self.future.done():
                self.future.set_exception(self.denied or PermissionDeniedError("", self.subject))
        elif self.task is not None:
            self.task.cancel()


class Denials:
    """The open requests of one connection, ended by the violations reported for them."""

    def __init__(self, inbox_prefix: Callable[[], str] = lambda: "_INBOX") -> None:
        self._open: set[_Request] = set()
        self._inbox_prefix = inbox_prefix

    def report(self, text: str) -> int | None:
        """End the requests a violation is about and return how many (None: not a violation)."""
        parsed = parse_violation(text)
        if parsed is None:
            return None
        kind, subject = parsed
        ended = 0
        for request in list(self._open):
            if request.denied is not None:
                continue
            if kind == "publish" and request.subject.lower() == subject:
                what = describe_subject(request.subject)
                request.denied = PermissionDeniedError(
                    f"permission denied: this NATS user may not publish to "
                    f'"{request.subject}" ({what}); {_HINT}',
                    request.subject,
                )
            elif kind == "subscription" and subject.startswith(self._inbox_prefix().lower()):
                request.denied = PermissionDeniedError(
                    f"permission denied: this NATS user may not subscribe to its reply inbox "
                    f'"{subject}", so no request gets an answer; allow its inbox prefix '
                    f"(`aioq permissions --inbox-prefix`); {_HINT}",
                    subject,
                )
            else:
                continue
            request.end()
            ended += 1
        return ended

    def watch(self, subject: str, future: asyncio.Future[Any]) -> None:
        """End `future`, the ack of an async publish to `subject`, if the subject is denied."""
        request = _Request(subject, future=future)
        self._open.add(request)
        future.add_done_callback(lambda _: self._open.discard(request))

    async def guard(self, subject: str, coroutine: Any) -> Any:
        """Await `coroutine`, a request to `subject`, ending it early if the subject is denied."""
        task = asyncio.current_task()
        if task is None:
            return await coroutine
        request = _Request(subject, task)
        self._open.add(request)
        try:
            return await coroutine
        except asyncio.CancelledError:
            if request.denied is None:
                raise
            task.uncancel()
            raise request.denied from None
        finally:
            self._open.discard(request)
