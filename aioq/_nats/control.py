"""`NatsControl`: shared rate limits, repeatable ticks and unique keys in KV buckets, pauses."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Final

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import (
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KeyValue

from aioq._nats.kv import delete_at
from aioq._nats.provision import ensure_bucket, level_consumers
from aioq.errors import BrokerError
from aioq.naming import Names
from aioq.options import MAX_UNIQUE_TTL
from aioq.settings import Replication

__all__ = ["NatsControl"]

# Consumer pause (`pause_until`) exists from this server version on.
_PAUSE_VERSION: Final = (2, 11, 0)
# An open-ended pause: the latest time nats-server accepts.
_FOREVER: Final = "9999-12-31T23:59:59Z"
# A resume is a pause ending this long after it is set (see `NatsControl.resume`).
_RESUME_AFTER_S: Final = 0.05
_RESUME_ATTEMPTS: Final = 5
_PAUSE_VISIBLE_S: Final = 2.0
# A compare-and-set on a tick record is retried this often before the record is left as is.
_CAS_ATTEMPTS: Final = 5


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class NatsControl:
    """State every worker and scheduler of an app shares: limits, ticks, pauses."""

    def __init__(
        self, nc: NatsClient, js: JetStreamContext, names: Names, replication: Replication
    ) -> None:
        self.nc = nc
        self.js = js
        self.names = names
        self._replication = replication
        self._buckets: dict[str, KeyValue] = {}

    async def _bucket(self, name: str) -> KeyValue:
        kv = self._buckets.get(name)
        if kv is not None:
            return kv
        # Unique keys age out after the longest allowed hold, their delete markers with them.
        ttl = MAX_UNIQUE_TTL if name == self.names.unique_bucket else None
        kv = await ensure_bucket(self.js, name, ttl, replication=self._replication)
        self._buckets[name] = kv
        return kv

    async def _read(self, bucket: str, key: str) -> tuple[bytes | None, int]:
        kv = await self._bucket(bucket)
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            return None, 0
        return entry.value or None, entry.revision or 0

    async def _write(self, bucket: str, key: str, data: bytes, revision: int) -> bool:
        kv = await self._bucket(bucket)
        try:
            if revision:
                await kv.update(key, data, last=revision)
            else:
                await kv.create(key, data)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def last_tick(self, name: str) -> float | None:
        """The latest tick recorded for repeatable `name`."""
        data, _ = await self._read(self.names.schedules_bucket, name)
        return _tick_of(data)

    async def record_tick(self, name: str, tick: float) -> None:
        """Record `tick` as fired (compare-and-set, so a later tick is never overwritten)."""
        record = json.dumps({"tick": tick, "fired_at": time.time()}).encode()
        for _ in range(_CAS_ATTEMPTS):
            data, revision = await self._read(self.names.schedules_bucket, name)
            recorded = _tick_of(data)
            if recorded is not None and recorded >= tick:
                return
            if await self._write(self.names.schedules_bucket, name, record, revision):
                return

    async def read_limit(self, queue: str) -> tuple[bytes | None, int]:
        """The shared rate-limit state of `queue`."""
        return await self._read(self.names.limits_bucket, queue)

    async def write_limit(self, queue: str, data: bytes, revision: int) -> bool:
        """Compare-and-set the shared rate-limit state of `queue`."""
        return await self._write(self.names.limits_bucket, queue, data, revision)

    async def read_unique(self, key: str) -> tuple[bytes | None, int]:
        """The holder of unique key `key` and its revision (0: free)."""
        return await self._read(self.names.unique_bucket, key)

    async def write_unique(self, key: str, data: bytes, revision: int) -> bool:
        """Compare-and-set the holder of unique key `key`."""
        return await self._write(self.names.unique_bucket, key, data, revision)

    async def delete_unique(self, key: str, revision: int) -> bool:
        """Free unique key `key` if it is still at `revision`."""
        kv = await self._bucket(self.names.unique_bucket)
        return await delete_at(kv, key, revision)

    # -- pause -------------------------------------------------------------------------------

    def _check_pause_support(self) -> None:
        version = self.nc.connected_server_version
        found = (version.major, version.minor, version.patch)
        if found < _PAUSE_VERSION:
            raise BrokerError(
                "pausing a queue needs nats-server 2.11 or newer (consumer pause); "
                f"the server runs {'.'.join(map(str, found))}. Stop the queue's workers instead, "
                "or upgrade the server"
            )

    async def _require_consumer(self, queue: str) -> None:
        try:
            await self.js.consumer_info(self.names.jobs_stream, self.names.consumer(queue))
        except NotFoundError:
            raise BrokerError(
                f"queue {queue!r} has no consumer on stream {self.names.jobs_stream} yet: "
                "start a worker on it once (or check the queue name and --prefix)"
            ) from None

    async def pause(self, queue: str, until: datetime | None) -> None:
        """Pause the queue's consumer until `until` (None: until resumed)."""
        self._check_pause_support()
        await self._require_consumer(queue)
        stamp = _FOREVER if until is None else _rfc3339(until)
        answer = await self.js.pause_consumer(
            self.names.jobs_stream, self.names.consumer(queue), stamp
        )
        for consumer in await level_consumers(self.js, self.names, queue):
            await self.js.pause_consumer(self.names.jobs_stream, consumer, stamp)
        # A cluster applies the pause through its meta leader: the consumer reports it a few
        # milliseconds after the answer. Return once it does, so a read that follows sees it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _PAUSE_VISIBLE_S
        while answer.paused and await self.paused_until(queue) is None:
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.01)

    async def resume(self, queue: str) -> None:
        """Resume the queue's consumer at once.

        Not with the server's resume request: after it, pulls that were already waiting (an
        idle worker's) get nothing until they expire, seconds later (measured on 2.11.0 and
        2.15.1). A pause that ends does serve them, at once; so the pause is replaced by one
        ending `_RESUME_AFTER_S` from now, by the server's clock (a pause that ends in the
        server's past would not wake anyone either, hence the growing margin).
        """
        self._check_pause_support()
        await self._require_consumer(queue)
        if await self.paused_until(queue) is None:
            return
        stream = self.names.jobs_stream
        consumers = [self.names.consumer(queue), *await level_consumers(self.js, self.names, queue)]
        margin = _RESUME_AFTER_S
        for _ in range(_RESUME_ATTEMPTS):
            end = _rfc3339(datetime.now(UTC) + timedelta(seconds=margin))
            answers = [await self.js.pause_consumer(stream, c, end) for c in consumers]
            if all(answer.paused for answer in answers):
                await asyncio.sleep(margin)  # resumed when this returns
                return
            margin *= 4  # the server's clock is ahead of ours
        for consumer in consumers:
            await self.js.resume_consumer(stream, consumer)

    async def paused_until(self, queue: str) -> datetime | None:
        """End of the queue's pause, None if not paused (or the server cannot pause)."""
        try:
            info = await self.js.consumer_info(self.names.jobs_stream, self.names.consumer(queue))
        except NotFoundError:
            return None
        if not getattr(info, "paused", False):
            return None
        return _parse_rfc3339(getattr(info.config, "pause_until", None))


def _parse_rfc3339(stamp: object) -> datetime | None:
    """A server timestamp (nanoseconds, ``Z``) as an aware datetime."""
    if not isinstance(stamp, str) or not stamp:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", stamp.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _tick_of(data: bytes | None) -> float | None:
    if not data:
        return None
    try:
        value = json.loads(data)["tick"]
    except (ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None
