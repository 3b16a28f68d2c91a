"""Options and error handling shared by the commands."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Annotated

import typer

from aioq.errors import AioqError

__all__ = ["ServerOption", "fail_on_errors"]

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        envvar="NATS_URL",
        help="NATS server URL(s), comma-separated. [default: $NATS_URL, else the app's own]",
        show_envvar=False,
        metavar="URL",
    ),
]


@contextlib.contextmanager
def fail_on_errors() -> Iterator[None]:
    """Turn an `AioqError` into one line on stderr and exit code 1; Ctrl-C into exit 130."""
    try:
        yield
    except AioqError as e:
        logging.getLogger("aioq").debug("error details", exc_info=True)
        print(f"error: {e}", file=sys.stderr)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
