"""Atomic batch publish (nats-server 2.12+): up to 1000 messages of one stream, one ack.

Every message carries the batch's id and its place in it; the last one also commits the
batch and is the only one with a reply. The server stores all of them at once, at
consecutive sequences, or none (an already-stored ``Nats-Msg-Id`` in it fails it whole).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Final

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.nuid import NUID

from aioq._nats.bulk import header_block, publish_all

__all__ = ["MAX_BATCH", "Message", "atomic_supported", "send_batch"]

#: The server's limit of messages in one atomic batch.
MAX_BATCH: Final = 1000
_ATOMIC_SINCE: Final = (2, 12, 0)
_BATCH_ID: Final = "Nats-Batch-Id"
_BATCH_SEQUENCE: Final = "Nats-Batch-Sequence"
_BATCH_COMMIT: Final = "Nats-Batch-Commit"

#: A message to publish: subject, body and headers.
Message = tuple[str, bytes, Mapping[str, str]]

_batch_ids = NUID()


def atomic_supported(nc: NatsClient) -> bool:
    """Whether the connected server knows atomic batches (older ones ignore their headers)."""
    v = nc.connected_server_version
    return (v.major, v.minor, v.patch) >= _ATOMIC_SINCE


async def send_batch(
    nc: NatsClient, js: JetStreamContext, messages: Sequence[Message]
) -> asyncio.Future[PubAck]:
    """Publish `messages` (1 to `MAX_BATCH`, one stream) as one batch; its commit's ack.

    The ack's ``seq`` is the last message's: the first one is at ``seq - len(messages) + 1``.
    """
    batch_id = _batch_ids.next().decode()
    *staged, (subject, data, headers) = messages
    await publish_all(
        nc,
        (
            (s, header_block({**h, _BATCH_ID: batch_id, _BATCH_SEQUENCE: str(n)}), d)
            for n, (s, d, h) in enumerate(staged, 1)
        ),
    )
    commit = {**headers, _BATCH_ID: batch_id, _BATCH_SEQUENCE: str(len(messages))}
    commit[_BATCH_COMMIT] = "1"
    return await js.publish_async(subject, data, headers=commit)
