"""The ``aioq`` command line: a thin layer over the Python API."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from typing import Annotated, Any, Final

import typer
from typer.core import TyperGroup

from aioq._version import __version__
from aioq.cli._options import option

__all__ = ["cli", "main"]

# Click's exception base, from wherever this typer takes click (recent ones bundle it).
_CLICK_EXCEPTION: Final[type[Exception]] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


#: Each command, in --help order, as the ``module:attribute`` under ``aioq.cli`` that holds it
#: (a function, or a typer app for a group); a module is imported only when its command runs
#: or --help lists it, so ``aioq worker`` loads no other command's dependencies.
COMMANDS: Final = {
    "worker": "worker:worker",
    "server": "server:server",
    "scheduler": "scheduler:scheduler",
    "schedules": "scheduler:schedules",
    "enqueue": "jobs:enqueue",
    "queues": "inspect:queues",
    "workers": "inspect:workers",
    "groups": "inspect:groups",
    "replay": "replay:replay",
    "events": "events:events",
    "dashboard": "dashboard:dashboard",
    "permissions": "permissions:permissions_command",
    "doctor": "doctor:doctor",
    "queue": "queue:queue_app",
    "job": "jobs:job_cli",
    "dead": "dead:dead_cli",
}


class _LazyCommands(MutableMapping[str, Any]):
    """The root's commands by name, each built from its module on first access."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            module, _, attribute = COMMANDS[name].partition(":")
            target = getattr(importlib.import_module(f"aioq.cli.{module}"), attribute)
            if not isinstance(target, typer.Typer):  # a function: typer builds it from an app
                function, target = target, typer.Typer(add_completion=False)
                target.command(name)(function)
            command = typer.main.get_command(target)
            command.name = name
            # Run bare, a command that needs an argument shows its help.
            command.no_args_is_help |= any(p.required for p in command.params)
            self._built[name] = command
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("the commands of aioq are fixed")

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class _Commands(TyperGroup):
    """The root command: commands loaded lazily, a usage error as one line.

    A usage error is ``error: ...`` on stderr and exit status 2; Click's own report (usage,
    a hint, then the error in a box) spans several lines.
    """

    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.commands = _LazyCommands()

    def main(self, *args: Any, **extra: Any) -> Any:
        if not extra.setdefault("standalone_mode", True):
            return super().main(*args, **extra)
        try:
            code = super().main(*args, **{**extra, "standalone_mode": False})
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


def main() -> None:
    """Entry point of the ``aioq`` command."""
    cli()
