"""Publishes that a reconnect would strand: sent again at once on the new connection.

A JetStream publish sent just before the server went away waits for an answer that will
never come, for its whole timeout (5 s). When the connection comes back while it waits, the
publish is sent again at once instead: with a ``Nats-Msg-Id`` the stream stores it once
however often it is sent.
"""

from __future__ import annotations

import asyncio
import weakref

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck

__all__ = ["connection_restored", "publish_resent"]

# The futures waiting for each connection's next reconnect.
_waiting: weakref.WeakKeyDictionary[NatsClient, set[asyncio.Future[None]]] = (
    weakref.WeakKeyDictionary()
)


def connection_restored(nc: NatsClient) -> None:
    """Tell the publishes waiting on `nc` that it reconnected: their answers are lost."""
    for future in _waiting.pop(nc, set()):
        if not future.done():
            future.set_result(None)


async def publish_resent(
    nc: NatsClient, js: JetStreamContext, subject: str, data: bytes, headers: dict[str, str]
) -> tuple[PubAck, bool]:
    """`js.publish`, sent again whenever `nc` reconnects before the answer came.

    `headers` must hold a ``Nats-Msg-Id``. Returns the acknowledgement and whether the publish
    was sent more than once (a duplicate answer may then be the stored first send's).
    """
    resent = False
    while True:
        restored = asyncio.get_running_loop().create_future()
        # Only a publish written to a live connection can be stranded by a reconnect; one
        # buffered while disconnected goes out on the new connection and is answered there.
        if nc.is_connected:
            _waiting.setdefault(nc, set()).add(restored)
        sending = asyncio.ensure_future(js.publish(subject, data, headers=headers))
        try:
            await asyncio.wait({sending, restored}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            sending.cancel()
            raise
        finally:
            _waiting.get(nc, set()).discard(restored)
            restored.cancel()
        if sending.done():
            return sending.result(), resent
        sending.cancel()
        await asyncio.wait([sending])
        resent = True
