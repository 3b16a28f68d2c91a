"""One delivered JetStream message, with the settlement calls the worker needs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

from nats.aio.msg import Msg

__all__ = ["NatsDelivery"]

_MSG_ID: Final = "Nats-Msg-Id"


class NatsDelivery:
    """A fetched job message: its bytes, delivery count and store time, and its settlement.

    The delivery count and store time come from the server (the ack reply subject), never
    from headers a publisher could forge.
    """

    __slots__ = ("_msg", "attempt", "data", "delivered", "renewed", "seq", "stored_at")

    def __init__(self, msg: Msg) -> None:
        self._msg = msg
        self.data: bytes = msg.data
        self.renewed = time.monotonic()
        self.delivered, self.seq, self.stored_at = _parse_ack_subject(msg.reply)
        self.attempt = self.delivered

    @property
    def msg_id(self) -> str | None:
        """The publisher's `Nats-Msg-Id` header, if any."""
        headers = self._msg.headers
        return headers.get(_MSG_ID) if headers else None

    @property
    def headers(self) -> Mapping[str, str] | None:
        """The message's headers, if any."""
        return self._msg.headers

    async def ack(self) -> None:
        """Acknowledge: the job is done and leaves the stream.

        Sent without waiting for the server's confirmation, which would cost a round trip per
        job (about half the worker's throughput, measured). An ack lost with the connection
        means the job runs again after its lease: a duplicate, never a loss.
        """
        await self._msg.ack()

    async def nak(self, delay: float | None = None) -> None:
        """Ask for redelivery, after `delay` seconds if given."""
        await self._msg.nak(delay=delay if delay and delay > 0 else None)

    async def in_progress(self) -> None:
        """Reset the lease: the job is still running."""
        self.renewed = time.monotonic()
        await self._msg.in_progress()

    async def term(self) -> None:
        """Remove the job for good: no redelivery."""
        await self._msg.term()


def _parse_ack_subject(reply: str) -> tuple[int, int, float]:
    """Return (delivery count, stream sequence, store time in unix seconds) from an ack subject.

    v1: ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>`` (9 tokens);
    v2 inserts domain and account hash after ``ACK`` and may append a random token.
    """
    tokens = reply.split(".")
    offset = 2 if len(tokens) == 9 else 4
    try:
        delivered = int(tokens[offset + 2])
        stream_seq = int(tokens[offset + 3])
        stored_ns = int(tokens[offset + 5])
    except (IndexError, ValueError) as e:
        raise ValueError(f"not a JetStream ack subject: {reply!r}") from e
    return delivered, stream_seq, stored_ns / 1e9
