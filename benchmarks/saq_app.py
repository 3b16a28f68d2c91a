"""SAQ peer: the job functions and the settings its CLI loads.

Worker:

    saq benchmarks.saq_app.settings            # add --workers N for N processes

``concurrency=100``; everything else is SAQ's default (its CLI logs at ERROR by default).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from saq import Queue

from benchmarks.recorder import record

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
QUEUE_NAME = "bench"


async def noop(ctx: dict[str, Any], *, t: float) -> None:
    record(t, time.time())


async def sleep10ms(ctx: dict[str, Any], *, t: float) -> None:
    start = time.time()
    await asyncio.sleep(0.01)
    record(t, start)


def settings() -> dict[str, Any]:
    """SAQ calls this in each worker process (a callable settings object is allowed)."""
    return {
        "queue": Queue.from_url(REDIS_URL, name=QUEUE_NAME),
        "functions": [noop, sleep10ms],
        "concurrency": 100,
    }
