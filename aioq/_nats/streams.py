"""Reading stored messages back from JetStream streams, and the header aioq dedupes by."""

from __future__ import annotations

from typing import Final

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from aioq.backend.dead import StoredMessage

__all__ = ["MSG_ID", "gone", "last_message", "message_at", "next_message", "subjects"]

#: The header JetStream deduplicates by.
MSG_ID: Final = "Nats-Msg-Id"
# The server's error code for a message that is no longer there (it may come as a 500).
_NO_MESSAGE_FOUND: Final = 10057
# ... and its answer to deleting a sequence that is gone (a 400).
_SEQUENCE_NOT_FOUND: Final = 10043


def gone(error: APIError) -> bool:
    """Whether the server answered that the message is not there (404, 500 10057, 400 10043)."""
    gone_codes = (_NO_MESSAGE_FOUND, _SEQUENCE_NOT_FOUND)
    return isinstance(error, NotFoundError) or error.err_code in gone_codes


async def subjects(js: JetStreamContext, stream: str, pattern: str) -> dict[str, int]:
    """Message count per subject of `stream` matching `pattern` (empty if no stream)."""
    try:
        info = await js.stream_info(stream, subjects_filter=pattern)
    except NotFoundError:
        return {}
    return dict(info.state.subjects or {})


async def last_message(js: JetStreamContext, stream: str, subject: str) -> StoredMessage | None:
    """The latest message stored on `subject`, or None."""
    try:
        msg = await js.get_msg(stream, subject=subject)
    except NotFoundError:
        return None
    return stored(msg)


async def message_at(js: JetStreamContext, stream: str, seq: int) -> StoredMessage | None:
    """The message stored at sequence `seq`, or None if it is gone."""
    try:
        msg = await js.get_msg(stream, seq=seq)
    except APIError as e:
        if gone(e):
            return None
        raise
    return stored(msg)


async def next_message(
    js: JetStreamContext, stream: str, subject: str, seq: int
) -> StoredMessage | None:
    """The first message on `subject` at sequence `seq` or later, or None."""
    try:
        msg = await js.get_msg(stream, seq=seq, subject=subject, next=True)
    except NotFoundError:
        return None
    return stored(msg)


def stored(msg: object) -> StoredMessage:
    """A message read back, as the seam's `StoredMessage`."""
    seq = getattr(msg, "seq", 0) or 0
    subject = getattr(msg, "subject", "") or ""
    data = getattr(msg, "data", b"") or b""
    when = getattr(msg, "time", None)
    timestamp = when.timestamp() if when is not None and hasattr(when, "timestamp") else None
    return StoredMessage(seq, subject, data, timestamp)
