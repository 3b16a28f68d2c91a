"""The options and arguments that several commands share, each declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aioq.cli._logging import LogFormat, LogLevel

__all__ = [
    "AppOption",
    "CredsOption",
    "JsonOption",
    "LogFormatOption",
    "LogLevelOption",
    "MetricsHostOption",
    "MetricsPortOption",
    "PasswordOption",
    "PrefixOption",
    "QueueArgument",
    "ServerOption",
    "TokenOption",
    "UserOption",
]

ServerOption = Annotated[
    str | None,
    typer.Option(
        "--server",
        "-s",
        envvar="NATS_URL",
        help=r"NATS server URL(s), comma-separated. \[default: $NATS_URL, else the app's own]",
        show_envvar=False,
        metavar="URL",
    ),
]
PrefixOption = Annotated[
    str | None,
    typer.Option(
        "--prefix",
        help=r"Namespace of the subjects, streams and buckets. \[default: the app's, else aioq]",
        metavar="PREFIX",
        show_default=False,
    ),
]
CredsOption = Annotated[
    Path | None,
    typer.Option(
        "--creds",
        envvar="NATS_CREDS",
        exists=True,
        dir_okay=False,
        help=r"NATS credentials file (JWT and nkey). \[default: $NATS_CREDS, else the app's]",
        show_envvar=False,
        metavar="FILE",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="NATS_TOKEN",
        help=r"NATS authentication token. \[default: $NATS_TOKEN, else the app's]",
        show_envvar=False,
        metavar="TOKEN",
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar="NATS_USER",
        help=r"NATS user name. \[default: $NATS_USER, else the app's]",
        show_envvar=False,
        metavar="USER",
    ),
]
PasswordOption = Annotated[
    str | None,
    typer.Option(
        "--password",
        envvar="NATS_PASSWORD",
        help=r"NATS password. \[default: $NATS_PASSWORD, else the app's]",
        show_envvar=False,
        metavar="PASSWORD",
    ),
]
AppOption = Annotated[
    str | None,
    typer.Option(
        "--app",
        help="Your app, as module:attribute: its servers, prefix and credentials become the "
        "defaults, and results decode to its tasks' types.",
        metavar="APP_PATH",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print JSON (for scripts) instead of a table.")
]
QueueArgument = Annotated[
    str, typer.Argument(help="The queue.", metavar="QUEUE", show_default=False)
]
LogLevelOption = Annotated[
    LogLevel,
    typer.Option(
        "--log-level",
        case_sensitive=False,
        help="Log level: debug, info, warning or error.",
        metavar="LEVEL",
    ),
]
LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        case_sensitive=False,
        help="Log lines as readable text, or json: one object per line with the job's fields "
        "(for log shippers).",
        metavar="FORMAT",
    ),
]
MetricsPortOption = Annotated[
    int | None,
    typer.Option(
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics on http://HOST:PORT/metrics; each worker on a host "
        r"needs its own port (0 picks a free one and logs it). \[default: no metrics]",
        metavar="PORT",
        show_default=False,
    ),
]
MetricsHostOption = Annotated[
    str,
    typer.Option(
        "--metrics-host",
        help="Address the metrics are served on (0.0.0.0 for a scraper on another host).",
        metavar="HOST",
    ),
]
