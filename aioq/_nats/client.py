"""aioq's nats-py client: requests that fail fast when denied, async publishes that settle.

Two nats-py 2.16 behaviours are mended here, in one place:

- A request to a subject the user may not publish to gets no reply, only an asynchronous
  ``-ERR``: it would time out. Requests are tracked by `Denials` and end at once with a
  `PermissionDeniedError` instead.
- `JetStreamContext.publish_async` leaves its future pending forever when the server answers
  with an error (a full queue, a full stream): nats-py raises the error in the reply
  handler instead of setting it on the future. Here it is set on the future; and a denied
  subject, which gets no answer at all, fails the future with `PermissionDeniedError`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError

from aioq._nats.denials import Denials

__all__ = ["AioqNatsClient"]


class _JetStream(JetStreamContext):
    def __init__(self, conn: AioqNatsClient, **opts: Any) -> None:
        super().__init__(conn, **opts)
        self._denials = conn.denials

    async def publish_async(
        self,
        subject: str,
        payload: bytes = b"",
        wait_stall: float | None = None,
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> asyncio.Future[PubAck]:
        """`JetStreamContext.publish_async`; the future fails if the subject is denied."""
        future = await super().publish_async(subject, payload, wait_stall, stream, headers, msg_ttl)
        self._denials.watch(subject, future)
        return future

    async def _handle_async_reply(self, msg: Msg) -> None:
        try:
            await super()._handle_async_reply(msg)
        except APIError as e:
            # The token slicing is nats-py's own (see the parent method).
            token = msg.subject[len(self._nc._inbox_prefix) + 22 + 2 :]
            future = self._publish_async_futures.get(token)
            if future is not None and not future.done():
                future.set_exception(e)


class AioqNatsClient(NatsClient):
    """A nats-py client whose requests fail fast when denied (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self.denials = Denials(lambda: bytes(self._inbox_prefix).decode())

    async def request(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float = 0.5,
        old_style: bool = False,
        headers: dict[str, Any] | None = None,
    ) -> Msg:
        """`nats.aio.client.Client.request`, failing fast on a permission violation."""
        result: Msg = await self.denials.guard(
            subject, super().request(subject, payload, timeout, old_style, headers)
        )
        return result

    def jetstream(self, **opts: Any) -> JetStreamContext:
        """A JetStream context whose async publishes settle on an error reply too."""
        return _JetStream(self, **opts)
