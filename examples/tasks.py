"""An example app: the tasks the README's demo runs.

Run a worker on it with ``aioq worker examples.tasks:app -q default -q email``.
"""

from __future__ import annotations

import asyncio
import logging

from aioq import Aarq, Context, State

app = Aarq("nats://127.0.0.1:4222")
log = logging.getLogger("examples.tasks")


@app.on_startup
async def open_resources(state: State) -> None:
    # One shared resource for every job of this worker (an HTTP client, a DB pool, ...).
    state.outbox = []


@app.on_shutdown
async def close_resources(state: State) -> None:
    log.info("sent %d emails in this worker", len(state.outbox))


@app.task
async def add(ctx: Context, a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@app.task(queue="email", retries=3, timeout=10)
async def send_email(ctx: Context, to: str, subject: str) -> None:
    """Pretend to send an email."""
    await asyncio.sleep(0.05)
    ctx.state.outbox.append((to, subject))
    log.info("email to %s: %s (job %s, attempt %d)", to, subject, ctx.job_id, ctx.attempt)
