"""`aioq dashboard`: serve the web dashboard of an app (needs the ``dashboard`` extra)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Annotated

import typer

from aioq.app import Aarq
from aioq.cli._command import CONNECTION_OPTIONS, Connection, command, fail
from aioq.cli._options import LOGGING, AppArgument, Logging, option

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
    try:
        await app.connect()
    finally:
        await app.close()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


HostOption = Annotated[str, option("--host",
    help="Address to listen on (loopback only by default).",
)]  # fmt: skip
AuthOption = Annotated[str | None, option("--auth", envvar="AIOQ_DASHBOARD_AUTH",
    show_envvar=False, metavar="USER:PASSWORD", default="$AIOQ_DASHBOARD_AUTH, else none",
    help="USER:PASSWORD for HTTP basic auth on every page and the API.",
)]  # fmt: skip


@command
def dashboard(
    app_path: AppArgument,
    connection: Connection = CONNECTION_OPTIONS,
    host: HostOption = "127.0.0.1",
    port: Annotated[int, option("--port", min=0, max=65535, help="Port.")] = 8080,
    auth: AuthOption = None,
    read_only: Annotated[bool, option("--read-only", help="Hide and refuse every action.")] = False,
    logs: Logging = LOGGING,
) -> None:
    """Serve the web dashboard: queues, workers, jobs, dead letters, schedules, live.

    Listens on 127.0.0.1 unless --host says otherwise; stops on Ctrl-C or SIGTERM.

    Exit status: 0 stopped; 1 the app cannot be loaded or the extra is missing; 2 bad option.
    """
    credentials = parse_auth(auth)
    logs.configure()
    try:
        from aioq.dashboard import create_dashboard
        from aioq.dashboard.serve import serve
    except ImportError:
        fail(_MISSING)
    app = connection.app()
    asyncio.run(_reachable(app))  # one clear error now rather than a failed startup
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
    serve(web, host, port)
