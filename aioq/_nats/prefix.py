"""Deleting what one app prefix created on a NATS server (used by the test harness)."""

from __future__ import annotations

import contextlib
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from aioq.naming import Names

__all__ = ["delete_prefix"]


def _owned_by(stream: str, names: Names) -> bool:
    """Whether `stream` belongs to the prefix: ``<STEM>_<NAME>``, ``KV_<prefix>-<bucket>``...

    The last part must hold no further separator, so that prefix ``shop`` never claims the
    streams of prefix ``shop-x`` (``SHOP_X_JOBS``, ``KV_shop-x-workers``).
    """
    stem = names.jobs_stream.removesuffix("_JOBS")
    rules = ((f"{stem}_", "_"), (f"KV_{names.prefix}-", "-"), (f"OBJ_{names.prefix}-", "-"))
    return any(stream.startswith(head) and sep not in stream[len(head) :] for head, sep in rules)


async def delete_prefix(url: str, prefix: str) -> list[str]:
    """Delete every stream and KV bucket of `prefix` on the server at `url`.

    That is the jobs and dead-letter streams, the workers, results, schedules and limits
    buckets, and any other ``<PREFIX>_*`` stream or ``<prefix>-*`` bucket. Returns the names of
    the deleted streams.
    """
    names = Names(prefix)
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=1)
    try:
        js = nc.jetstream()
        wanted = {names.jobs_stream, names.dead_stream}
        wanted |= {f"KV_{names.workers_bucket}", f"KV_{names.results_bucket}"}
        wanted |= {f"KV_{names.schedules_bucket}", f"KV_{names.limits_bucket}"}
        wanted |= {f"KV_{names.unique_bucket}", f"KV_{names.waiting_bucket}"}
        with contextlib.suppress(Exception):
            wanted |= {
                info.config.name
                for info in await _all_streams(js)
                if info.config.name and _owned_by(info.config.name, names)
            }
        deleted: list[str] = []
        for stream in sorted(wanted):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
                deleted.append(stream)
        return deleted
    finally:
        await nc.close()


async def _all_streams(js: JetStreamContext) -> list[Any]:
    found: list[Any] = []
    while True:
        page = await js.streams_info(offset=len(found))
        found.extend(page)
        if not page or len(page) < 256:
            return found
