"""The shop's tasks, on a module-level app configured for production.

The tests never change this file: aioq's pytest plugin binds this very `app` to a throwaway
nats-server and a prefix of each test's own.
"""

from __future__ import annotations

import asyncio

from aioq import Aarq, Context, State

app = Aarq("nats://nats.shop.internal:4222", prefix="shop")


class PaymentDeclined(Exception):
    """The card was declined: retrying does not help."""


@app.on_startup
async def open_clients(state: State) -> None:
    # A real project would open an SMTP or HTTP client here; the outbox stands in for it.
    state.outbox = []
    state.charges = {}


@app.task(queue="orders")
async def place_order(ctx: Context, order_id: int, items: list[str], email: str) -> int:
    """Store the order (pretend), then send the receipt as a job of its own."""
    await send_receipt.enqueue(order_id, email)
    return len(items)


@app.task(queue="email", retries=2, backoff=0.1)
async def send_receipt(ctx: Context, order_id: int, email: str) -> None:
    """Email the receipt."""
    ctx.state.outbox.append((email, f"receipt for order {order_id}"))


@app.task(queue="payments", retries=3, backoff=0.1, no_retry_for=(PaymentDeclined,))
async def charge(ctx: Context, order_id: int, cents: int) -> str:
    """Charge a card; the payment provider times out on the first attempt of big amounts."""
    if cents < 0:
        raise PaymentDeclined(f"order {order_id}: negative amount")
    if cents > 10_000 and ctx.attempt == 1:
        raise TimeoutError("payment provider did not answer")
    ctx.state.charges[order_id] = cents
    return f"charged {cents} on attempt {ctx.attempt}"


@app.task(queue="reports", timeout=30)
async def export_report(ctx: Context, n: int) -> int:
    """A slow job: what a deployment's graceful stop must let finish."""
    await asyncio.sleep(0.5)
    return n
