"""`NatsWaiting`: jobs waiting for their dependencies, in the ``<prefix>-waiting`` KV bucket."""

from __future__ import annotations

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

    async def ids(self, limit: int) -> list[str]:
        """Ids of waiting jobs, at most `limit` (none while the bucket does not exist)."""
        if self._kv is None:
            try:
                self._kv = await self.js.key_value(self.names.waiting_bucket)
            except BucketNotFoundError:
                return []
        kv = self._kv
        try:
            keys = await kv.keys()
        except NoKeysError:
            return []
        return keys[:limit]
