"""Serve a dashboard with uvicorn (what ``aioq dashboard`` runs)."""

from __future__ import annotations

from typing import Any

import uvicorn

__all__ = ["serve"]


def serve(web: Any, host: str, port: int) -> None:
    """Run `web` on `host`:`port` until Ctrl-C or SIGTERM; quiet access log."""
    uvicorn.run(web, host=host, port=port, lifespan="on", log_level="warning", access_log=False)
