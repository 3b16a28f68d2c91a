"""An app for `aioq doctor --app`: queue mail with a 20 s lease."""

from __future__ import annotations

import os

from aioq import Aarq, Context

app = Aarq(os.environ.get("NATS_URL", "nats://127.0.0.1:4222"), prefix="doc", max_queued=100)
app.queue("mail", ack_wait=20)


@app.task(queue="mail")
async def send(ctx: Context, to: str) -> str:
    return to


@app.task(queue="reports")
async def report(ctx: Context) -> None:
    return None
