"""Compare-and-set deletes on KV buckets."""

from __future__ import annotations

from typing import Final

from nats.js.errors import BadRequestError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

__all__ = ["delete_at"]

# The server's "wrong last sequence": a KV delete reports it as a bad request.
_WRONG_LAST_SEQUENCE: Final = 10071


async def delete_at(kv: KeyValue, key: str, revision: int) -> bool:
    """Delete `key` if it is still at `revision`; False if it moved on."""
    try:
        await kv.delete(key, last=revision)
    except KeyWrongLastSequenceError:
        return False
    except BadRequestError as e:
        if e.err_code != _WRONG_LAST_SEQUENCE:
            raise
        return False
    return True
