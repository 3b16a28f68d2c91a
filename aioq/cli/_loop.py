"""The event loop of `aioq worker`: asyncio's own, or uvloop (the `uvloop` extra)."""

from __future__ import annotations

import asyncio
import enum
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any

import typer

__all__ = ["LoopChoice", "loop_factory", "run_on"]

Factory = Callable[[], asyncio.AbstractEventLoop] | None


class LoopChoice(enum.StrEnum):
    """``--loop``. auto is uvloop when it is installed, else asyncio's own loop."""

    auto = "auto"
    asyncio = "asyncio"
    uvloop = "uvloop"


def loop_factory(choice: LoopChoice) -> tuple[str, Factory]:
    """The loop's name and the factory of `choice` (None: asyncio's default loop)."""
    installed = importlib.util.find_spec("uvloop") is not None
    if choice is LoopChoice.asyncio or (choice is LoopChoice.auto and not installed):
        return "asyncio", None
    if not installed:
        raise typer.BadParameter(
            "uvloop is not installed: pip install 'aioq-nats[uvloop]', or use --loop asyncio",
            param_hint="--loop",
        )
    import uvloop

    return "uvloop", uvloop.new_event_loop


def run_on(factory: Factory, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` to completion on a new loop made by `factory`, as `asyncio.run` does."""
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
