"""Tasks for the CLI tests: ``aioq enqueue tests.apps.cli_app:app TASK ...``.

The tests register the same tasks on their own app (`register`) to run an in-process worker
with the test's prefix; the command line imports the module-level `app` and is pointed at the
test's server and prefix with ``-s`` and ``--prefix``.
"""

from __future__ import annotations

import asyncio

from aioq import Aarq, Context

#: Flipped by a test to "deploy a fix" for `fragile`.
FIXED = {"yes": False}


def register(app: Aarq) -> Aarq:
    """Register this module's tasks on `app`."""

    @app.task(queue="default", retries=0)
    async def add(ctx: Context, a: int, b: int) -> int:
        return a + b

    @app.task(queue="default", retries=0)
    async def fragile(ctx: Context, value: str) -> str:
        if not FIXED["yes"]:
            raise ValueError(f"not fixed yet: {value}")
        return value.upper()

    @app.task(queue="slow", retries=0)
    async def hold(ctx: Context, seconds: float) -> str:
        await ctx.progress(0.5, "halfway")
        await asyncio.sleep(seconds)
        return "held"

    @app.task(queue="default", retries=1, backoff=0.05)
    async def flaky(ctx: Context) -> int:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return ctx.attempt

    return app


app = register(Aarq(prefix="aioqcli"))
app.group_limit("gold", max_running=2, rate_limit=50, rate_interval=60)  # `aioq groups --app`
