"""What tests in every folder share: waiting for an outcome with a deadline, freezing a process."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
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


async def frozen(pid: int) -> None:
    """SIGSTOP process `pid` and wait until every thread of it has stopped.

    `kill` returns before the stop reaches each thread: a thread busy on another core can
    still answer a message sent right after it.
    """
    os.kill(pid, signal.SIGSTOP)
    await eventually(lambda: _stopped(pid), timeout=5, what=f"process {pid} stopped")


def _stopped(pid: int) -> bool:
    states = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        text = stat.read_text()
        states.append(text[text.rindex(")") + 2])  # the state follows the command's name
    return bool(states) and all(state in "tT" for state in states)
