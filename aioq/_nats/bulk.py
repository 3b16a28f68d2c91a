"""Many core publishes with headers, encoded in one go and queued on the connection at once.

`Client.publish` validates and encodes the headers of every message on its own, which costs
more than the rest of the publish. Here the messages of a burst (a batch's jobs, their
records) are encoded straight to the protocol and handed to the connection's outgoing
buffer in one piece. That buffer is nats-py's (``_send_command``, ``_flush_pending``); a
client without it, or one that is not connected (it checks and buffers on its own then),
gets the messages through `Client.publish`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from nats.aio.client import Client as NatsClient

__all__ = ["header_block", "publish_all"]

_HEADER_LINE: Final = b"NATS/1.0\r\n"
_NEWLINES: Final = str.maketrans({"\r": " ", "\n": " "})

#: A message to publish: subject, its encoded header block (`header_block`; empty: no
#: headers), body.
Encoded = tuple[str, bytes, bytes]


def header_block(headers: Mapping[str, str]) -> bytes:
    """The protocol's header block of `headers` (keys are aioq's own, values may be anything)."""
    lines = "".join([f"{k}: {v}\r\n" for k, v in headers.items()])
    if lines.count("\r") + lines.count("\n") != 2 * len(headers):  # a value spans lines
        lines = "".join([f"{k}: {v.translate(_NEWLINES)}\r\n" for k, v in headers.items()])
    return _HEADER_LINE + lines.encode() + b"\r\n"


async def publish_all(nc: NatsClient, messages: Iterable[Encoded]) -> None:
    """Publish `messages` in order, without replies."""
    send = getattr(nc, "_send_command", None)
    if send is None or not nc.is_connected or nc.is_draining_pubs:
        for subject, header, data in messages:
            await nc.publish(subject, data, headers=_decoded(header) if header else None)
        return
    parts = []
    for subject, header, data in messages:
        if header:
            size = len(header)
            parts.append(b"HPUB %s %d %d\r\n" % (subject.encode(), size, size + len(data)))
            parts.append(header)
        else:
            parts.append(b"PUB %s %d\r\n" % (subject.encode(), len(data)))
        parts.append(data)
        parts.append(b"\r\n")
    if not parts:
        return
    await send(b"".join(parts))
    flush_queue = getattr(nc, "_flush_queue", None)
    if flush_queue is not None and flush_queue.empty():
        await nc._flush_pending()


def _decoded(header: bytes) -> dict[str, str]:
    lines = header[len(_HEADER_LINE) :].decode().split("\r\n")
    return dict(line.split(": ", 1) for line in lines if line)
