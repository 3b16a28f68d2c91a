"""What tests in every folder share: waiting for an outcome with a deadline."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any


async def eventually(
    condition: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "the condition",
    detail: Callable[[], str] | None = None,
) -> Any:
    """Wait until `condition()` (a value or an awaitable) is truthy, and return it.

    Fails the test after `timeout` seconds, naming `what` and the last value (and `detail()`).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            more = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what} (last: {value!r}){more}"
            )
        await asyncio.sleep(interval)
