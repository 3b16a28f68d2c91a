"""Read-only state of the jobs stream, its consumers and the workers bucket."""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NotFoundError

from aioq.naming import Names

__all__ = ["ConsumerState", "JobsStreamState", "StreamState"]

# The server lists consumers in pages of this many.
_PAGE: Final = 256


@dataclass(frozen=True, slots=True)
class ConsumerState:
    """What the server reports about one consumer of the jobs stream."""

    name: str
    pending: int
    ack_pending: int
    redelivered: int
    waiting: int
    paused: bool
    paused_until: float | None
    #: The server's cap on messages delivered and not acknowledged; None if uncapped.
    max_ack_pending: int | None = None


@dataclass(frozen=True, slots=True)
class JobsStreamState:
    """Messages in the jobs stream, and its consumers."""

    messages: int
    consumers: list[ConsumerState]


class StreamState:
    """Stream, consumer and bucket inspection for one app prefix; changes nothing."""

    def __init__(self, js: JetStreamContext, names: Names) -> None:
        self.js = js
        self.names = names

    async def jobs_stream(self) -> JobsStreamState:
        """Message count and consumers of the jobs stream (empty if it does not exist)."""
        stream = self.names.jobs_stream
        try:
            info = await self.js.stream_info(stream)
        except NotFoundError:
            return JobsStreamState(0, [])
        consumers: list[ConsumerState] = []
        while True:
            try:
                page = await self.js.consumers_info(stream, offset=len(consumers) or None)
            except NotFoundError:
                break
            consumers.extend(_consumer_state(c) for c in page)
            if len(page) < _PAGE or len(consumers) >= info.state.consumer_count:
                break
        return JobsStreamState(info.state.messages, consumers)

    async def subject_counts(self, pattern: str) -> tuple[str | None, dict[str, int]]:
        """The stream that holds `pattern` (None if none does), and its messages per subject."""
        try:
            stream = await self.js.find_stream_name_by_subject(pattern)
        except NotFoundError:
            return None, {}
        try:
            info = await self.js.stream_info(stream, subjects_filter=pattern)
        except NotFoundError:
            return None, {}
        return stream, dict(info.state.subjects or {})

    async def per_queue(self, pattern: str) -> tuple[str | None, dict[str, int]]:
        """`subject_counts` summed by the queue token (the third) of each subject."""
        stream, subjects = await self.subject_counts(pattern)
        counts: dict[str, int] = {}
        for subject, count in subjects.items():
            tokens = subject.split(".")
            if len(tokens) >= 3:
                counts[tokens[2]] = counts.get(tokens[2], 0) + count
        return stream, counts

    async def worker_records(self) -> list[bytes]:
        """The value of every key in the workers bucket (none if the bucket does not exist)."""
        bucket = self.names.workers_bucket
        try:
            kv = await self.js.key_value(bucket)
        except (BucketNotFoundError, NotFoundError):
            return []
        try:
            info = await self.js.stream_info(f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.>")
        except NotFoundError:
            return []
        keys = [subject.split(".", 2)[2] for subject in info.state.subjects or {}]

        async def value(key: str) -> bytes | None:
            # A deleted key (a worker that stopped) raises too; one that expired is gone.
            with contextlib.suppress(KeyNotFoundError):
                entry = await kv.get(key)
                return entry.value or None
            return None

        values = await asyncio.gather(*(value(key) for key in keys))
        return [v for v in values if v]


def _consumer_state(info: ConsumerInfo) -> ConsumerState:
    paused = bool(getattr(info, "paused", False))
    until = _unix_time(getattr(info.config, "pause_until", None)) if paused else None
    return ConsumerState(
        name=info.name,
        pending=info.num_pending or 0,
        ack_pending=info.num_ack_pending or 0,
        redelivered=info.num_redelivered or 0,
        waiting=info.num_waiting or 0,
        paused=paused,
        paused_until=until,
        max_ack_pending=_cap(info.config.max_ack_pending),
    )


def _cap(value: int | None) -> int | None:
    return value if value is not None and value > 0 else None


def _unix_time(stamp: object) -> float | None:
    """A server timestamp (RFC 3339, nanoseconds, ``Z``) as unix seconds."""
    if not isinstance(stamp, str) or not stamp:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", stamp.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
