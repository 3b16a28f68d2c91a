"""The facts `aioq doctor` audits, read from a running server without changing anything."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import urllib.request
from collections.abc import Mapping
from typing import Any

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, StreamInfo
from nats.js.errors import NoStreamResponseError, NotFoundError

from aioq._nats.auth import auth_options, connect_hint
from aioq._nats.client import AioqNatsClient
from aioq.doctor import ConsumerFacts, Facts, StreamFacts
from aioq.errors import BrokerUnavailableError
from aioq.naming import Names
from aioq.settings import NatsSettings, redact_urls

__all__ = ["gather_facts", "read_sync_setting"]

_MONITOR_TIMEOUT_S = 3.0


async def gather_facts(
    settings: NatsSettings,
    names: Names,
    app_queues: Mapping[str, float] | None = None,
    monitor: str | None = None,
) -> Facts:
    """Connect, read the server's and the prefix's state, and disconnect.

    Args:
        settings: How to reach the server.
        names: The prefix's names.
        app_queues: The app's queues and the ack_wait it sets for each, when an app is given.
        monitor: The server's monitoring URL (``http://host:8222``), for its fsync setting.
    """
    nc = await _connect(settings)
    try:
        version = nc.connected_server_version
        info: dict[str, Any] = getattr(nc, "_server_info", {}) or {}
        facts = Facts(
            version=(version.major, version.minor, version.patch),
            jetstream=False,
            max_payload=nc.max_payload,
            sync=await asyncio.to_thread(read_sync_setting, monitor) if monitor else None,
            clustered=bool(info.get("cluster")),
            account_storage_limit=-1,
            account_storage_used=0,
            jobs_stream_expected=names.jobs_stream,
        )
        js = nc.jetstream()
        try:
            account = await js.account_info()
        except (nats.errors.NoRespondersError, NoStreamResponseError):
            return facts
        consumers = await _consumers(js, names, app_queues or {})
        return dataclasses.replace(
            facts,
            jetstream=True,
            account_storage_limit=account.limits.max_storage,
            account_storage_used=account.storage,
            streams=await _streams(js, names),
            consumers=consumers,
            dead_letters=await _dead_letters(js, names),
            unpulled_queues=sorted(set(app_queues or {}) - {c.queue for c in consumers}),
        )
    finally:
        await nc.close()


async def _connect(settings: NatsSettings) -> AioqNatsClient:
    nc = AioqNatsClient()
    errors: list[BaseException] = []

    async def note(error: Exception) -> None:
        errors.append(error)

    try:
        async with asyncio.timeout(2 * settings.connect_timeout + 2):
            await nc.connect(
                servers=settings.servers,
                name=settings.name or "aioq doctor",
                connect_timeout=settings.connect_timeout,  # type: ignore[arg-type]
                max_reconnect_attempts=0,
                allow_reconnect=False,
                error_cb=note,
                **auth_options(settings),
            )
    except Exception as e:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1):
                await nc.close()
        why = errors[0] if errors else e
        raise BrokerUnavailableError(
            f"cannot reach NATS at {', '.join(redact_urls(settings.servers))}: "
            f"{type(why).__name__}: {why} {connect_hint(why)}"
        ) from e
    return nc


def read_sync_setting(monitor: str) -> bool | float | None:
    """True for sync_interval always, else the interval in seconds; None if unknown."""
    url = monitor.rstrip("/") + "/varz"
    try:
        with urllib.request.urlopen(url, timeout=_MONITOR_TIMEOUT_S) as answer:
            config = json.load(answer)["jetstream"]["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if config.get("sync_always"):
        return True
    interval = config.get("sync_interval")
    return interval / 1e9 if isinstance(interval, int | float) and interval > 0 else False


def _roles(names: Names) -> dict[str, str]:
    return {
        names.jobs_stream: "jobs",
        names.dead_stream: "dead letters",
        f"KV_{names.results_bucket}": "job records and results",
        f"KV_{names.workers_bucket}": "worker heartbeats",
        f"KV_{names.schedules_bucket}": "repeatable jobs' last ticks",
        f"KV_{names.limits_bucket}": "shared rate limits",
        f"KV_{names.unique_bucket}": "unique jobs' keys",
        f"KV_{names.waiting_bucket}": "jobs waiting for their dependencies",
    }


async def _streams(js: JetStreamContext, names: Names) -> list[StreamFacts]:
    found = []
    for name, role in _roles(names).items():
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            continue
        found.append(_stream_facts(info, role))
    return found


def _value(enum_or_str: Any) -> str:
    return str(getattr(enum_or_str, "value", enum_or_str) or "")


def _stream_facts(info: StreamInfo, role: str) -> StreamFacts:
    c, state = info.config, info.state
    return StreamFacts(
        name=c.name or "",
        role=role,
        storage=_value(c.storage),
        replicas=c.num_replicas or 1,
        retention=_value(c.retention),
        discard=_value(c.discard),
        max_age=c.max_age or 0.0,
        max_msgs=c.max_msgs if c.max_msgs is not None else -1,
        max_bytes=c.max_bytes if c.max_bytes is not None else -1,
        max_msgs_per_subject=c.max_msgs_per_subject,
        duplicate_window=c.duplicate_window or 0.0,
        messages=state.messages,
        bytes=state.bytes,
    )


async def _consumers(
    js: JetStreamContext, names: Names, app_queues: Mapping[str, float]
) -> list[ConsumerFacts]:
    try:
        infos: list[ConsumerInfo] = await js.consumers_info(names.jobs_stream)
    except NotFoundError:
        return []
    found = []
    for info in infos:
        c = info.config
        queue = info.name
        level = names.level_consumer(queue)  # a priority level's: its queue's settings
        found.append(
            ConsumerFacts(
                queue=queue,
                ack_policy=_value(c.ack_policy),
                ack_wait=c.ack_wait or 30.0,
                max_deliver=c.max_deliver if c.max_deliver is not None else -1,
                inactive_threshold=c.inactive_threshold,
                pending=info.num_pending or 0,
                app_ack_wait=app_queues.get(level[0] if level else queue),
            )
        )
    return found


async def _dead_letters(js: JetStreamContext, names: Names) -> dict[str, int]:
    try:
        info = await js.stream_info(names.dead_stream, subjects_filter=names.dead_wildcard)
    except NotFoundError:
        return {}
    counts: dict[str, int] = {}
    for subject, count in (info.state.subjects or {}).items():
        queue = subject.split(".")[-2]
        counts[queue] = counts.get(queue, 0) + count
    return counts
