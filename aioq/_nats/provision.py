"""Idempotent creation of the streams, consumers and KV buckets aioq needs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    Placement,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import APIError, BucketNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from aioq._nats.domain import in_domain
from aioq.errors import PermissionDeniedError, ProvisioningError
from aioq.naming import Names
from aioq.options import QueueOptions
from aioq.priority import MAX_PRIORITY, MIN_PRIORITY
from aioq.settings import Replication

__all__ = ["ensure_bucket", "ensure_consumer", "ensure_history", "ensure_streams"]

log = logging.getLogger(__name__)

# Long enough to absorb a producer's retries of a timed-out publish (same job id).
DUPLICATE_WINDOW_S = 120.0


# A stream whose replica count changed elects a new group and copies its data first.
_SETTLE_TIMEOUT_S = 30.0
_SETTLE_POLL_S = 0.1
# JetStream API error codes.
_ALREADY_EXISTS = 10058
_NO_PEERS = 10005  # fewer suitable servers than replicas (or than match the tags)
_NOT_CLUSTERED = 10074  # replicas > 1 on a server that is not in a cluster


def _replicated(config: StreamConfig, replication: Replication) -> StreamConfig:
    placement = Placement(tags=list(replication.tags)) if replication.tags else None
    return config.evolve(num_replicas=replication.count, placement=placement)


def _placement_error(what: str, replication: Replication, e: APIError) -> ProvisioningError:
    """One actionable message for the server refusing where or how often to store `what`."""
    wanted = f"replicas={replication.count}"
    if e.err_code == _NOT_CLUSTERED:
        return ProvisioningError(
            f"cannot create {what} with {wanted}: JetStream on this server is not clustered, "
            "so it keeps one copy only; use replicas=1 or connect to a cluster (`aioq server "
            "--cluster 3` starts one locally)"
        )
    if e.err_code == _NO_PEERS:
        tags = f" carrying the tags {list(replication.tags)}" if replication.tags else ""
        return ProvisioningError(
            f"cannot place {what} with {wanted}: the cluster has fewer than "
            f"{replication.count} JetStream servers{tags} up ({e.description}); lower "
            "replicas, fix placement_tags, or add servers"
        )
    return ProvisioningError(f"cannot create {what}: {e}")


async def _ensure_stream(
    js: JetStreamContext,
    config: StreamConfig,
    replication: Replication,
    enforce: dict[str, Any] | None = None,
) -> StreamConfig:
    """Create the stream, or update it to `enforce`; its config as the server has it."""
    assert config.name is not None
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        try:
            created = await js.add_stream(_replicated(config, replication))
        except APIError as e:
            if e.err_code != _ALREADY_EXISTS:  # created concurrently by another process
                raise _placement_error(f"stream {config.name}", replication, e) from e
            info = await js.stream_info(config.name)
        else:
            await _settled(js, config.name, replication.count)
            return created.config
    missing = set(config.subjects or ()) - set(info.config.subjects or ())
    changed = {k: v for k, v in (enforce or {}).items() if getattr(info.config, k) != v}
    if missing:
        changed["subjects"] = sorted(set(config.subjects or ()) | set(info.config.subjects or ()))
    if changed:
        try:
            info.config = await _updated(js, info.config.evolve(**changed))
        except APIError as e:
            raise ProvisioningError(
                f"stream {config.name} cannot take {sorted(changed)} = {changed} ({e}); delete "
                "it or use another prefix"
            ) from e
    await _match_replicas(js, info.config, replication)
    if replication.replicas is not None:
        await _settled(js, config.name, replication.replicas)
    return info.config


async def _match_replicas(
    js: JetStreamContext, current: StreamConfig, replication: Replication
) -> None:
    """Change an existing stream to the replica count the app asks for, if it asks for one."""
    wanted = replication.replicas
    have = current.num_replicas or 1
    if wanted is None or have == wanted:
        return
    try:
        await js.update_stream(current.evolve(num_replicas=wanted))
    except APIError as e:
        if e.err_code in (_NOT_CLUSTERED, _NO_PEERS):
            raise _placement_error(f"stream {current.name}", replication, e) from e
        raise ProvisioningError(
            f"stream {current.name} has {have} replicas, the app asks for {wanted}, and the "
            f"server refused the change ({e}); run `nats stream edit {current.name} "
            f"--replicas {wanted}` or give the app replicas={have}"
        ) from e
    log.warning("stream %s changed from %d to %d replicas", current.name, have, wanted)
    assert current.name is not None
    await _settled(js, current.name, wanted)


async def _settled(js: JetStreamContext, stream: str, wanted: int) -> None:
    """Wait until `stream` has a leader and `wanted` current copies (writes fail until then).

    On a cluster a new stream's group elects a leader first (even with one copy), and a
    write in between gets no answer. A server that is not clustered reports no group.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _SETTLE_TIMEOUT_S
    while loop.time() < deadline:
        with contextlib.suppress(APIError, TimeoutError, nats.errors.Error):
            info = await js.stream_info(stream)
            group = info.cluster
            if group is None or (wanted == 1 and group.leader):
                return
            peers = group.replicas or []
            if group.leader and len(peers) + 1 == wanted and all(p.current for p in peers):
                return
        await asyncio.sleep(_SETTLE_POLL_S)
    log.warning(
        "stream %s has not settled on %d replicas after %.0f s; writes may pause meanwhile",
        stream,
        wanted,
        _SETTLE_TIMEOUT_S,
    )


async def ensure_bucket(
    js: JetStreamContext,
    bucket: str,
    ttl: float | None = None,
    replication: Replication | None = None,
) -> KeyValue:
    """Bind KV bucket `bucket`, creating it (history 1, TTL `ttl` if given) if it is missing.

    Binding first lets operators create the bucket themselves (``nats kv add``). With
    `replication`, a new bucket gets its replicas and tags, an existing one its replica count.
    """
    replication = replication or Replication()
    config = KeyValueConfig(bucket=bucket, history=1, direct=True, storage=StorageType.FILE)
    if ttl is not None:
        config.ttl = ttl
    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        pass
    else:
        if replication.replicas is not None:
            info = await js.stream_info(f"KV_{bucket}")
            await _match_replicas(js, info.config, replication)
            # Created a moment ago by another process, it may still be electing its leader.
            await _settled(js, f"KV_{bucket}", replication.replicas)
        return in_domain(js, kv)
    placement = Placement(tags=list(replication.tags)) if replication.tags else None
    try:
        kv = await js.create_key_value(
            config.evolve(replicas=replication.count, placement=placement)
        )
    except APIError as e:
        if e.err_code != _ALREADY_EXISTS:
            raise _placement_error(f"KV bucket {bucket}", replication, e) from e
        kv = await js.key_value(bucket)
    else:
        await _settled(js, f"KV_{bucket}", replication.count)
    return in_domain(js, kv)


async def _updated(js: JetStreamContext, config: StreamConfig) -> StreamConfig:
    """Apply `config` to its existing stream; the stream's config as the server now has it."""
    info = await js.update_stream(config)
    return info.config


async def ensure_history(js: JetStreamContext, names: Names, replication: Replication) -> None:
    """Create the history stream if it is missing: per-message TTLs (nats-server 2.11+)."""
    config = StreamConfig(
        name=names.history_stream,
        subjects=[names.history_subject("*", "*")],
        storage=StorageType.FILE,
        allow_msg_ttl=True,
    )
    await _ensure_stream(js, config, replication, enforce={"allow_msg_ttl": True})


async def ensure_streams(
    js: JetStreamContext,
    names: Names,
    replication: Replication,
    max_queued: int | None = None,
    atomic: bool = False,
) -> bool:
    """Create the jobs stream (work queue) and the dead-letter stream if they are missing.

    `max_queued` caps the jobs waiting on each queue's subject (-1: no cap; None: leave an
    existing stream's cap as it is). A publish beyond it is refused, never an old job dropped.
    With `atomic` (a server that has them), the jobs stream takes atomic batches, an existing
    one too. Returns whether it takes them.
    """
    cap: dict[str, Any] = {}
    if max_queued is not None:
        cap = {"max_msgs_per_subject": max_queued, "discard_new_per_subject": max_queued > 0}
    jobs = await _ensure_stream(
        js,
        StreamConfig(
            name=names.jobs_stream,
            # Delayed jobs wait in the same stream, outside every queue consumer's filter.
            subjects=[names.jobs_wildcard, names.sched_wildcard],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            duplicate_window=DUPLICATE_WINDOW_S,
            allow_atomic=atomic or None,
            **cap,
        ),
        replication,
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
        replication,
    )
    return await _allow_atomic(js, jobs) if atomic else False


async def _allow_atomic(js: JetStreamContext, config: StreamConfig) -> bool:
    """Let a stream made by an older version take atomic batches; whether it takes them.

    Only a user who may update the stream can (the admin role): the others go on without.
    """
    if config.allow_atomic:
        return True
    try:
        info = await js.update_stream(config.evolve(allow_atomic=True))
    except (APIError, PermissionDeniedError) as e:
        log.warning(
            "stream %s does not take atomic batches and cannot be changed here (%s): "
            "enqueue_many publishes job by job; connect once as a user who may update it",
            config.name,
            e,
        )
        return False
    return bool(info.config.allow_atomic)


async def ensure_consumer(
    js: JetStreamContext, names: Names, queue: str, options: QueueOptions, level: int | None = None
) -> None:
    """Create or update the durable pull consumer of `queue` (of its priority `level`).

    `max_deliver` stays unlimited: the worker bounds deliveries itself and dead-letters the
    job, because on a work-queue stream a message that hits the server's limit would just
    sit in the stream, invisible.
    """
    config = ConsumerConfig(
        durable_name=names.consumer(queue, level),
        filter_subjects=names.job_filters(queue)
        if level is None
        else [names.priority_subject(queue, level)],
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
    if level is not None:
        await _pause_like_the_queue(js, names, queue, level)


async def _pause_like_the_queue(js: JetStreamContext, names: Names, queue: str, level: int) -> None:
    """Pause a level's new consumer as long as its queue's own consumer is paused."""
    try:
        own = await js.consumer_info(names.jobs_stream, names.consumer(queue))
    except NotFoundError:
        return
    until = getattr(own.config, "pause_until", None)
    if getattr(own, "paused", False) and until:
        await js.pause_consumer(names.jobs_stream, names.consumer(queue, level), until)


async def level_consumers(js: JetStreamContext, names: Names, queue: str) -> list[str]:
    """The consumers of `queue`'s priority levels that exist now."""
    found = []
    for level in range(MIN_PRIORITY, MAX_PRIORITY + 1):
        try:
            await js.consumer_info(names.jobs_stream, names.consumer(queue, level))
        except NotFoundError:
            continue
        found.append(names.consumer(queue, level))
    return found
