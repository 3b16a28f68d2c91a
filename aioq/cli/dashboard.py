"""`aioq dashboard`: serve the web dashboard of an app (needs the ``dashboard`` extra)."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

import typer

from aioq.app import Aarq
from aioq.cli._common import (
    Connection,
    CredsOption,
    PasswordOption,
    PrefixOption,
    ServerOption,
    TokenOption,
    UserOption,
    fail,
    fail_on_errors,
    run_with_app,
)
from aioq.cli._logging import LogLevel, configure_logging

__all__ = ["dashboard", "parse_auth"]

_MISSING = (
    "the dashboard needs its extra dependencies (Starlette, Jinja2, uvicorn): "
    "pip install 'aioq-nats[dashboard]'"
)


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """``USER:PASSWORD`` as a pair; raises `typer.BadParameter` on a malformed value."""
    if text is None:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise typer.BadParameter("--auth takes USER:PASSWORD (both non-empty)")
    return user, password


async def _reachable(app: Aarq) -> None:
    await app.connect()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dashboard(
    app_path: Annotated[
        str,
        typer.Argument(
            help="The app, as module:attribute (e.g. myapp.tasks:app).",
            metavar="APP_PATH",
            show_default=False,
        ),
    ],
    server: ServerOption = None,
    prefix: PrefixOption = None,
    creds: CredsOption = None,
    token: TokenOption = None,
    user: UserOption = None,
    password: PasswordOption = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback only by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = 8080,
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth",
            envvar="AIOQ_DASHBOARD_AUTH",
            help="USER:PASSWORD for HTTP basic auth on every page and the API. "
            r"\[default: $AIOQ_DASHBOARD_AUTH, else none]",
            show_envvar=False,
            metavar="USER:PASSWORD",
        ),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Hide and refuse every action.")
    ] = False,
    log_level: Annotated[
        LogLevel,
        typer.Option(
            "--log-level",
            case_sensitive=False,
            help="Log level: debug, info, warning or error.",
            metavar="LEVEL",
        ),
    ] = LogLevel.info,
) -> None:
    """Serve the web dashboard: queues, workers, jobs, dead letters, schedules, live.

    Listens on 127.0.0.1 unless --host says otherwise; stops on Ctrl-C or SIGTERM.

    Exit status: 0 stopped; 1 the app cannot be loaded or the extra is missing; 2 bad option.
    """
    credentials = parse_auth(auth)
    configure_logging(log_level)
    try:
        import uvicorn

        from aioq.dashboard import create_dashboard
    except ImportError:
        fail(_MISSING)
    with fail_on_errors():
        app = Connection(server, prefix, creds, token, user, password).app(app_path)
        run_with_app(app, _reachable)  # one clear error now rather than a failed startup
        web = create_dashboard(app, read_only, auth=credentials)
        scope = "loopback only" if _is_loopback(host) else "reachable from the network"
        where = f"[{host}]" if ":" in host else host
        typer.echo(
            f"aioq dashboard on http://{where}:{port}/ ({scope}"
            f"{', basic auth' if credentials else ', no auth'}"
            f"{', read-only' if read_only else ''})"
        )
        if not _is_loopback(host) and credentials is None:
            typer.echo("warning: listening beyond loopback without --auth", err=True)
        config: dict[str, Any] = {"log_level": "warning", "access_log": False}
        uvicorn.run(web, host=host, port=port, lifespan="on", **config)
