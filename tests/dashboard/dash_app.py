"""The app the dashboard tests serve and run workers for (``tests.dashboard.dash_app:app``).

Its prefix comes from ``AIOQ_TEST_PREFIX``, so each test module has streams of its own.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from aioq import Aarq, Context

QUEUE = "dash"


def build(prefix: str, servers: str = "nats://127.0.0.1:4222") -> Aarq:
    app = Aarq(servers, prefix=prefix, ack_wait=2.0)
    app.queue(QUEUE, max_running=50, history=3600)
    app.group_limit("dash-tenant", max_running=5)

    @app.task(queue=QUEUE, retries=0)
    async def echo(ctx: Context, value: Any) -> Any:
        return value

    @app.task(queue=QUEUE, retries=0)
    def flaky(ctx: Context, path: str) -> str:
        """Fails until the file at `path` exists."""
        if not os.path.exists(path):
            raise RuntimeError("not fixed yet")
        return "fixed"

    @app.task(queue=QUEUE, retries=0)
    async def slow_echo(ctx: Context, value: Any, seconds: float) -> Any:
        await asyncio.sleep(seconds)
        return value

    @app.task(queue=QUEUE, retries=0)
    async def sleepy(ctx: Context, seconds: float) -> None:
        await asyncio.sleep(seconds)

    app.add_repeatable(echo, every=3600, args=["tick"], name="hourly")
    return app


app = build(os.environ.get("AIOQ_TEST_PREFIX", "aioqdash"))
