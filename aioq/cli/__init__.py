"""The ``aioq`` command line: a thin layer over the Python API."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any, Final

import typer
from typer.core import TyperGroup

from aioq._version import __version__
from aioq.cli._options import option
from aioq.cli.dashboard import dashboard
from aioq.cli.dead import dead_cli
from aioq.cli.doctor import doctor
from aioq.cli.events import events
from aioq.cli.inspect import queues, workers
from aioq.cli.jobs import enqueue, job_cli
from aioq.cli.permissions import permissions_command
from aioq.cli.queue import queue_app
from aioq.cli.scheduler import scheduler, schedules
from aioq.cli.server import server
from aioq.cli.worker import worker

__all__ = ["cli", "main"]

# Click's exception base, from wherever this typer takes click (recent ones bundle it).
_CLICK_EXCEPTION: Final[type[Exception]] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


class _Commands(TyperGroup):
    """The root command: a usage error is one ``error: ...`` line on stderr and exit status 2.

    Click's own report (usage, a hint, then the error in a box) spans several lines.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        *more: Any,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, *more, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, *more, **extra)
        except _CLICK_EXCEPTION as e:
            error: Any = e
            if type(e).__name__ == "NoArgsIsHelpError":  # a command run bare: its help
                error.show()
            else:
                print(f"error: {' '.join(error.format_message().split())}", file=sys.stderr)
            sys.exit(error.exit_code)
        except typer.Abort:
            print("error: aborted", file=sys.stderr)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


cli = typer.Typer(
    name="aioq",
    cls=_Commands,
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
        option(
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
cli.command("permissions", no_args_is_help=True)(permissions_command)
cli.command()(doctor)


def main() -> None:
    """Entry point of the ``aioq`` command."""
    cli()
