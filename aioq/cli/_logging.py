"""Logging set-up for the command line; the library itself only logs."""

from __future__ import annotations

import enum
import logging
import sys

from aioq.logs import JsonFormatter

__all__ = ["LogFormat", "LogLevel", "configure_logging"]


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


def configure_logging(level: LogLevel, log_format: LogFormat = LogFormat.text) -> None:
    """Send log lines to stderr at `level`; nats-py's own logger stays at warning."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if log_format is LogFormat.json
        else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("nats").setLevel(max(logging.WARNING, root.level))
