"""The ``aioq`` command line: a thin layer over the Python API."""

from __future__ import annotations

from typing import Annotated

import typer

from aioq import __version__
from aioq.cli.admin import queues, workers
from aioq.cli.dashboard import dashboard
from aioq.cli.dead import dead_cli
from aioq.cli.events import events
from aioq.cli.jobs import enqueue, job_cli
from aioq.cli.queue import queue_app
from aioq.cli.scheduler import scheduler, schedules
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
cli.command(no_args_is_help=True)(scheduler)
cli.command(no_args_is_help=True)(schedules)
cli.add_typer(queue_app, name="queue")
cli.command(no_args_is_help=True)(enqueue)
cli.add_typer(job_cli, name="job")
cli.command()(queues)
cli.command()(workers)
cli.add_typer(dead_cli, name="dead")
cli.command()(events)
cli.command(no_args_is_help=True)(dashboard)


def main() -> None:
    """Entry point of the ``aioq`` command."""
    cli()
