"""The ``aioq`` command line: a thin layer over the Python API."""

from __future__ import annotations

from typing import Annotated

import typer

from aioq import __version__
from aioq.cli.server import server
from aioq.cli.worker import worker

__all__ = ["cli", "main"]

cli = typer.Typer(
    name="aioq",
    help="aioq: an asyncio job queue on NATS JetStream.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"aioq {__version__}")
        raise typer.Exit()


@cli.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """aioq: an asyncio job queue on NATS JetStream."""


cli.command(no_args_is_help=True)(worker)
cli.command()(server)


def main() -> None:
    """Entry point of the ``aioq`` command."""
    cli()
