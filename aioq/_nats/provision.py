"""Idempotent creation of the streams, consumers and KV buckets aioq needs."""

from __future__ import annotations

import logging
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from aioq.errors import ProvisioningError
from aioq.naming import Names
from aioq.options import QueueOptions

__all__ = ["ensure_bucket", "ensure_consumer", "ensure_streams"]

log = logging.getLogger(__name__)

# Long enough to absorb a producer's retries of a timed-out publish (same job id).
DUPLICATE_WINDOW_S = 120.0


async def _ensure_stream(
    js: JetStreamContext, config: StreamConfig, enforce: dict[str, Any] | None = None
) -> None:
    """Create the stream, or give an existing one the missing subjects and `enforce`d fields."""
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except APIError as e:
            if e.err_code != 10058:  # created concurrently by another process
                raise ProvisioningError(f"cannot create stream {config.name}: {e}") from e
            info = await js.stream_info(config.name)
    missing = set(config.subjects or ()) - set(info.config.subjects or ())
    changed = {k: v for k, v in (enforce or {}).items() if getattr(info.config, k) != v}
    if missing:
        changed["subjects"] = sorted(set(config.subjects or ()) | set(info.config.subjects or ()))
    if changed:
        try:
            await js.update_stream(info.config.evolve(**changed))
        except APIError as e:
            raise ProvisioningError(
                f"stream {config.name} cannot take {sorted(changed)} = {changed} ({e}); delete "
                "it or use another prefix"
            ) from e


async def ensure_streams(js: JetStreamContext, names: Names, max_queued: int | None = None) -> None:
    """Create the jobs stream (work queue) and the dead-letter stream if they are missing.

    `max_queued` caps the jobs waiting on each queue's subject (-1: no cap; None: leave an
    existing stream's cap as it is). A publish beyond it is refused, never an old job dropped.
    """
    cap: dict[str, Any] = {}
    if max_queued is not None:
        cap = {"max_msgs_per_subject": max_queued, "discard_new_per_subject": max_queued > 0}
    await _ensure_stream(
        js,
        StreamConfig(
            name=names.jobs_stream,
            # Delayed jobs wait in the same stream, outside every queue consumer's filter.
            subjects=[names.jobs_wildcard, names.sched_wildcard],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            duplicate_window=DUPLICATE_WINDOW_S,
            **cap,
        ),
        cap,
    )
    await _ensure_stream(
        js,
        StreamConfig(
            name=names.dead_stream,
            subjects=[names.dead_wildcard],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            duplicate_window=DUPLICATE_WINDOW_S,
        ),
    )


async def ensure_consumer(
    js: JetStreamContext, names: Names, queue: str, options: QueueOptions
) -> None:
    """Create or update the durable pull consumer of `queue`.

    `max_deliver` stays unlimited: the worker bounds deliveries itself and dead-letters the
    job, because on a work-queue stream a message that hits the server's limit would just
    sit in the stream, invisible.
    """
    config = ConsumerConfig(
        durable_name=names.consumer(queue),
        filter_subjects=names.job_filters(queue),
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=options.ack_wait,
        max_deliver=-1,
        max_ack_pending=options.max_ack_pending,
    )
    try:
        await js.add_consumer(names.jobs_stream, config)
    except APIError as e:
        raise ProvisioningError(
            f"cannot create consumer {config.durable_name} on {names.jobs_stream}: {e}"
        ) from e


async def ensure_bucket(js: JetStreamContext, bucket: str, ttl: float | None = None) -> KeyValue:
    """Bind KV bucket `bucket`, creating it (history 1, TTL `ttl` if given) if it is missing.

    Binding first lets operators create the bucket themselves (``nats kv add``).
    """
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    config = KeyValueConfig(bucket=bucket, history=1, direct=True, storage=StorageType.FILE)
    if ttl is not None:
        config.ttl = ttl
    try:
        return await js.create_key_value(config)
    except APIError as e:
        if e.err_code == 10058:  # created meanwhile by another process
            return await js.key_value(bucket)
        raise ProvisioningError(f"cannot create KV bucket {bucket}: {e}") from e
