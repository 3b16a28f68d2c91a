"""`NatsWorkers`: worker heartbeats in a KV bucket whose TTL removes silent workers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from aioq._nats.provision import ensure_bucket
from aioq._nats.stream_state import StreamState
from aioq.naming import Names
from aioq.settings import Replication

__all__ = ["NatsWorkers"]


class NatsWorkers:
    """The workers bucket: one key per worker, its latest heartbeat."""

    def __init__(self, js: JetStreamContext, names: Names, replication: Replication) -> None:
        self.js = js
        self.names = names
        self._replication = replication
        self._kv: KeyValue | None = None

    async def put(self, worker_id: str, data: bytes, ttl: float) -> None:
        """Write a heartbeat; the bucket's TTL removes it once the worker goes silent."""
        if self._kv is None:
            self._kv = await ensure_bucket(
                self.js, self.names.workers_bucket, ttl, self._replication
            )
        await self._kv.put(worker_id, data)

    async def delete(self, worker_id: str) -> None:
        """Remove a worker's heartbeat so it leaves the list at once."""
        if self._kv is not None:
            await self._kv.purge(worker_id)

    async def list(self) -> list[bytes]:
        """The heartbeat of every worker still registered."""
        return await StreamState(self.js, self.names).worker_records()

    async def ttl(self) -> float | None:
        """Seconds a heartbeat lasts without a new write (the bucket's TTL); None if unknown."""
        try:
            info = await self.js.stream_info(f"KV_{self.names.workers_bucket}")
        except NotFoundError:
            return None
        return info.config.max_age or None

    async def watch(self) -> AsyncIterator[tuple[str, bytes | None] | None]:
        """Every heartbeat, None once they are all delivered, then each change as it comes.

        A change is ``(worker id, heartbeat)``, with None for a removed heartbeat (an expired
        one may produce nothing). Ends at once while no worker ever registered.
        """
        try:
            kv = await self.js.key_value(self.names.workers_bucket)
        except (BucketNotFoundError, NotFoundError):
            return
        watcher = await kv.watchall()
        try:
            while True:
                entry = await watcher.updates(timeout=None)  # type: ignore[no-untyped-call]
                if entry is None:
                    yield None
                elif entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    yield entry.key, None
                else:
                    yield entry.key, entry.value
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]
