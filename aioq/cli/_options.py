"""The options and arguments that several commands share, each declared once."""

from __future__ import annotations

import dataclasses
import enum
from typing import Annotated, Any, Final

import typer

from aioq.logs import configure_logging

__all__ = [
    "LOGGING",
    "AppArgument",
    "JsonOption",
    "LogFormat",
    "LogLevel",
    "Logging",
    "QueueArgument",
    "argument",
    "option",
]


def option(*flags: str, help: str, default: str | None = None, **more: Any) -> Any:
    """A typer option; `default` tells --help what a default means that it cannot show."""
    if default is not None:
        help += rf" \[default: {default}]"
        more.setdefault("show_default", False)
    return typer.Option(*flags, help=help, **more)


def argument(help: str, metavar: str, **more: Any) -> Any:
    """A typer argument, its default not shown."""
    return typer.Argument(help=help, metavar=metavar, show_default=False, **more)


class LogLevel(enum.StrEnum):
    """Levels accepted by ``--log-level``."""

    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(enum.StrEnum):
    """Formats accepted by ``--log-format``."""

    text = "text"
    json = "json"


AppArgument = Annotated[
    str, argument("The app, as module:attribute (e.g. myapp.tasks:app).", "APP_PATH")
]
JsonOption = Annotated[bool, option("--json", help="Print JSON (for scripts) instead of a table.")]
QueueArgument = Annotated[str, argument("The queue.", "QUEUE")]


@dataclasses.dataclass(frozen=True, slots=True)
class Logging:
    """The logging options of a long-running command."""

    log_level: Annotated[
        LogLevel,
        option(
            "--log-level",
            case_sensitive=False,
            help="Log level: debug, info, warning or error.",
            metavar="LEVEL",
        ),
    ] = LogLevel.info
    log_format: Annotated[
        LogFormat,
        option(
            "--log-format",
            case_sensitive=False,
            help="Log lines as readable text, or json: one object per line with the job's fields "
            "(for log shippers).",
            metavar="FORMAT",
        ),
    ] = LogFormat.text

    def configure(self) -> None:
        """Send log lines to stderr as the options say."""
        configure_logging(self.log_level, self.log_format)


#: The default of a command's `Logging` parameter, which `command` turns into the options.
LOGGING: Final = Logging()
