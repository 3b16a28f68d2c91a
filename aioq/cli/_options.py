"""The options and arguments that several commands share, each declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from aioq.cli._logging import LogLevel

__all__ = [
    "AppOption",
    "CredsOption",
    "InboxPrefixOption",
    "JsonOption",
    "LogLevelOption",
    "NkeyOption",
    "PasswordOption",
    "PrefixOption",
    "QueueArgument",
    "ServerOption",
    "TlsCaOption",
    "TlsCertOption",
    "TlsKeyOption",
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


def _file_option(flag: str, envvar: str, what: str) -> Any:
    return typer.Option(
        flag,
        envvar=envvar,
        exists=True,
        dir_okay=False,
        help=rf"{what}. \[default: ${envvar}, else the app's]",
        show_envvar=False,
        metavar="FILE",
    )


CredsOption = Annotated[
    Path | None, _file_option("--creds", "NATS_CREDS", "NATS credentials file (JWT and nkey)")
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


NkeyOption = Annotated[
    Path | None, _file_option("--nkey", "NATS_NKEY", "NKey seed file (SU...) to authenticate with")
]
TlsCaOption = Annotated[
    Path | None,
    _file_option("--tls-ca", "NATS_CA", "CA file (PEM) that signed the server's certificate"),
]
TlsCertOption = Annotated[
    Path | None,
    _file_option("--tls-cert", "NATS_CERT", "Client certificate (PEM) for mutual TLS"),
]
TlsKeyOption = Annotated[
    Path | None, _file_option("--tls-key", "NATS_KEY", "Private key (PEM) of --tls-cert")
]
InboxPrefixOption = Annotated[
    str | None,
    typer.Option(
        "--inbox-prefix",
        envvar="NATS_INBOX_PREFIX",
        help=r"Subject prefix of the reply inboxes, for a user allowed only its own. "
        r"\[default: $NATS_INBOX_PREFIX, else the app's, else _INBOX]",
        show_envvar=False,
        metavar="PREFIX",
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
