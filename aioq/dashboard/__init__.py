"""The web dashboard: live queues, workers, jobs and dead letters in a browser.

Needs the ``dashboard`` extra (Starlette, Jinja2, uvicorn): ``pip install 'aioq-nats[dashboard]'``.
Serve it with ``aioq dashboard APP_PATH``, or mount `create_dashboard(app)` in your own
ASGI app. See docs/dashboard.md.
"""

from aioq.dashboard.app import Dashboard, create_dashboard

__all__ = ["Dashboard", "create_dashboard"]
