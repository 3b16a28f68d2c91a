"""`NatsWaiting`: jobs waiting for their dependencies, in the ``<prefix>-waiting`` KV bucket."""

from __future__ import annotations

from typing import Final

from nats.js import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

from aioq._nats.kv import delete_at
from aioq._nats.provision import ensure_bucket
from aioq.naming import Names
from aioq.settings import Replication

__all__ = ["NatsWaiting"]

# Longest wait for the next stored value while reading them all.
_READ_TIMEOUT_S: Final = 5.0


class NatsWaiting:
    """Waiting jobs by id, created with a KV create and removed by compare-and-set."""

    def __init__(self, js: JetStreamContext, names: Names, replication: Replication) -> None:
        self.js = js
        self.names = names
        self._replication = replication
        self._kv: KeyValue | None = None

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await ensure_bucket(
                self.js, self.names.waiting_bucket, replication=self._replication
            )
        return self._kv

    async def create(self, job_id: str, data: bytes) -> bool:
        """Store a waiting job; False if a job of this id waits already."""
        kv = await self._bucket()
        try:
            await kv.create(job_id, data)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def get(self, job_id: str) -> tuple[bytes, int] | None:
        """The waiting job and its revision, or None."""
        kv = await self._bucket()
        try:
            entry = await kv.get(job_id)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return entry.value, entry.revision

    async def delete(self, job_id: str, revision: int) -> bool:
        """Remove the waiting job if it is still at `revision`."""
        kv = await self._bucket()
        return await delete_at(kv, job_id, revision)

    async def _existing(self) -> KeyValue | None:
        """The bucket, bound if it exists (a reader does not create it)."""
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(self.names.waiting_bucket)
            except BucketNotFoundError:
                return None
        return self._kv

    async def values(self, limit: int) -> list[bytes]:
        """The waiting jobs, at most `limit`, through one watch of the bucket's latest values."""
        kv = await self._existing()
        if kv is None:
            return []
        watcher = await kv.watchall(ignore_deletes=True)
        found: list[bytes] = []
        try:
            while len(found) < limit:
                entry = await watcher.updates(timeout=_READ_TIMEOUT_S)  # type: ignore[no-untyped-call]
                if entry is None:  # the end of the values stored when the watch began
                    break
                if entry.value:
                    found.append(entry.value)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return found

    async def ids(self, limit: int) -> list[str]:
        """Ids of waiting jobs, at most `limit` (none while the bucket does not exist)."""
        kv = await self._existing()
        if kv is None:
            return []
        try:
            keys = await kv.keys()
        except NoKeysError:
            return []
        return keys[:limit]
