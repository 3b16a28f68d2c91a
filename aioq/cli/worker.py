"""`aioq worker`: run a worker process."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from aioq.cli._common import ServerOption, fail_on_errors
from aioq.cli._loader import load_app
from aioq.cli._logging import LogLevel, configure_logging
from aioq.worker import Worker

__all__ = ["worker"]


def worker(
    app_path: Annotated[
        str, typer.Argument(help="The app to run, as module:attribute (e.g. myapp.tasks:app).")
    ],
    queue: Annotated[
        list[str] | None,
        typer.Option(
            "--queue", "-q", help="Queue to pull from; repeat for several. [default: default]"
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, help="Jobs run at once.")
    ] = 10,
    log_level: Annotated[
        LogLevel, typer.Option("--log-level", case_sensitive=False, help="Log level.")
    ] = LogLevel.info,
    server: ServerOption = None,
    shutdown_grace: Annotated[
        float,
        typer.Option(
            min=0, help="Seconds running jobs get to finish on SIGTERM before they are requeued."
        ),
    ] = 30.0,
    heartbeat_interval: Annotated[
        float, typer.Option(min=0.05, help="Seconds between heartbeats in the workers KV bucket.")
    ] = 10.0,
) -> None:
    """Run a worker: pull jobs from the queues and run them until SIGTERM or SIGINT."""
    configure_logging(log_level)
    with fail_on_errors():
        app = load_app(app_path)
        if server:
            app.use_servers(server)
        runner = Worker(
            app,
            queues=queue or ["default"],
            concurrency=concurrency,
            shutdown_grace=shutdown_grace,
            heartbeat_interval=heartbeat_interval,
        )
        asyncio.run(runner.run())
