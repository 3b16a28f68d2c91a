"""`create_dashboard`: the dashboard as an ASGI app (Starlette), its pages and its JSON API."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from aioq.dashboard.data import DashboardData
from aioq.dashboard.live import LiveHub
from aioq.dashboard.security import CSRF_FIELD, CSRF_HEADER, Guard, cross_origin, new_token
from aioq.errors import AioqError, JobNotFoundError
from aioq.naming import validate_queue

if TYPE_CHECKING:
    from aioq.app import Aarq

__all__ = [
    "Dashboard",
    "HTTPProblem",
    "create_dashboard",
    "limit_of",
    "metrics_response",
    "queue_name",
    "status_names",
    "stream_response",
]

log = logging.getLogger("aioq.dashboard")

_HERE: Final = Path(__file__).parent
_STATUSES: Final = (
    "queued",
    "deferred",
    "waiting",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "expired",
    "aborted",
)
_PING_S: Final = 15.0
_FORM: Final = "application/x-www-form-urlencoded"
_MAX_LIMIT: Final = 500

Handler = Callable[[Request], Awaitable[Response]]


class HTTPProblem(Exception):
    """A request the dashboard refuses: its status and one clear message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Dashboard:
    """The state behind one dashboard app: its data access, live hub and settings."""

    def __init__(
        self,
        app: Aarq,
        *,
        read_only: bool = False,
        refresh: float = 1.0,
        keep_dead: float = 600.0,
    ) -> None:
        self.app = app
        self.read_only = read_only
        self.data = DashboardData(app)
        self.hub = LiveHub(self.data, refresh=refresh, keep_dead=keep_dead)
        self.csrf_token = new_token()
        self._start_lock = asyncio.Lock()
        self._owns_connection = False
        self.templates = Environment(
            loader=FileSystemLoader(_HERE / "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.templates.filters["ts"] = _format_time
        self.templates.filters["ago"] = _format_ago
        self.templates.filters["json"] = _pretty_json

    async def start(self) -> None:
        """Connect and start the live hub (once); requests call it if no lifespan did."""
        if self.hub.running:
            return
        async with self._start_lock:
            if not self.hub.running:
                self._owns_connection = not self.app.connected
                await self.hub.start()

    async def aclose(self) -> None:
        """Stop the live hub, and close the app's connection if the dashboard opened it."""
        await self.hub.stop()
        if self._owns_connection:
            await self.app.close()

    def render(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        """Render template `name` with the common context."""
        template = self.templates.get_template(name)
        html = template.render(
            root=request.scope.get("root_path", ""),
            path=request.url.path,
            read_only=self.read_only,
            csrf_token=self.csrf_token,
            csrf_field=CSRF_FIELD,
            **context,
        )
        return HTMLResponse(html, status_code=status)


def create_dashboard(
    app: Aarq,
    read_only: bool = False,
    *,
    auth: tuple[str, str] | None = None,
    refresh: float = 1.0,
    keep_dead: float = 600.0,
) -> Starlette:
    """The dashboard of `app` as an ASGI app: serve it, or mount it in FastAPI or Starlette.

    ``web.mount("/aioq", create_dashboard(app))``. The dashboard connects on its first request
    (or in its lifespan when served alone) and follows workers and events from then on.

    Args:
        app: The aioq app whose queues, workers and jobs to show.
        read_only: Hide every action, and refuse them (403).
        auth: ``(user, password)`` for HTTP basic auth on every page and the API.
        refresh: Seconds between live updates of open pages.
        keep_dead: Seconds a dead worker stays listed (greyed).
    """
    dash = Dashboard(app, read_only=read_only, refresh=refresh, keep_dead=keep_dead)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await dash.start()
        try:
            yield
        finally:
            await dash.aclose()

    page = functools.partial(_page, dash)
    action = functools.partial(_action, dash)

    from aioq.dashboard import views

    routes = [
        Route("/", page(views.overview_page)),
        Route("/workers", page(views.workers_page)),
        Route("/jobs", page(views.jobs_page)),
        Route("/jobs/{job_id}", page(views.job_page)),
        Route("/dead", page(views.dead_page)),
        Route("/schedules", page(views.schedules_page)),
        Route("/metrics", page(views.metrics)),
        Route("/api/queues", page(views.api_queues)),
        Route("/api/workers", page(views.api_workers)),
        Route("/api/groups", page(views.api_groups)),
        Route("/api/jobs", page(views.api_jobs)),
        Route("/api/jobs", action(views.enqueue), methods=["POST"]),
        Route("/api/jobs/{job_id}", page(views.api_job)),
        Route("/api/jobs/{job_id}/abort", action(views.abort), methods=["POST"]),
        Route("/api/queues/{name}/pause", action(views.pause), methods=["POST"]),
        Route("/api/queues/{name}/resume", action(views.resume), methods=["POST"]),
        Route("/api/dead", page(views.api_dead)),
        Route("/api/dead/{name}/retry", action(views.retry_dead), methods=["POST"]),
        Route("/api/dead/{name}/purge", action(views.purge_dead), methods=["POST"]),
        Route("/api/schedules", page(views.api_schedules)),
        Route("/api/events", page(views.api_events)),
        Route("/api/csrf", page(views.api_csrf)),
        Route("/api/stream", page(views.stream)),
        Mount("/static", StaticFiles(directory=_HERE / "static"), name="static"),
    ]
    web = Starlette(routes=routes, lifespan=lifespan)
    web.state.dashboard = dash
    web.add_middleware(Guard, auth=auth)
    return web


PageHandler = Callable[["Dashboard", Request], Awaitable[Response]]
ActionHandler = Callable[["Dashboard", Request, dict[str, Any]], Awaitable[Any]]


async def _refusing(
    dash: Dashboard, request: Request, call: Callable[[], Awaitable[Response]]
) -> Response:
    """`call()`, with each refusal turned into one clear error response."""
    try:
        return await call()
    except HTTPProblem as e:
        return _problem(dash, request, e)
    except JobNotFoundError as e:
        return _problem(dash, request, HTTPProblem(404, str(e)))
    except (AioqError, ValueError) as e:
        return _problem(dash, request, HTTPProblem(400, str(e)))
    except Exception as e:
        log.exception("dashboard: %s %s failed", request.method, request.url.path)
        message = f"the dashboard failed to answer: {e!r} (details in its log)"
        return _problem(dash, request, HTTPProblem(500, message))


def _page(dash: Dashboard, handler: PageHandler) -> Handler:
    async def endpoint(request: Request) -> Response:
        async def call() -> Response:
            await dash.start()
            return await handler(dash, request)

        return await _refusing(dash, request, call)

    return endpoint


def _action(dash: Dashboard, handler: ActionHandler) -> Handler:
    async def endpoint(request: Request) -> Response:
        async def call() -> Response:
            if dash.read_only:
                raise HTTPProblem(403, "the dashboard is read-only: actions are disabled")
            fields = await _fields(request)
            _check_csrf(dash, request, fields)
            await dash.start()
            result = await handler(dash, request, fields)
            dash.hub.forget_queues()
            if _is_form(request):
                return RedirectResponse(_next(request, fields), status_code=303)
            return _json(result)

        return await _refusing(dash, request, call)

    return endpoint


# -- request helpers ---------------------------------------------------------------------


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(_FORM)


async def _fields(request: Request) -> dict[str, Any]:
    """The fields of a form post (URL-encoded, as the pages send) or of a JSON object."""
    body = await request.body()
    if _is_form(request):
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError as e:
        raise HTTPProblem(400, f"the request body is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise HTTPProblem(400, "the request body must be a JSON object")
    return value


def _check_csrf(dash: Dashboard, request: Request, fields: dict[str, Any]) -> None:
    why = cross_origin(request)
    if why is not None:
        raise HTTPProblem(403, f"cross-origin request refused: {why}")
    token = request.headers.get(CSRF_HEADER) or fields.get(CSRF_FIELD)
    if not isinstance(token, str) or not hmac.compare_digest(token, dash.csrf_token):
        raise HTTPProblem(
            403,
            f"missing or wrong CSRF token: send the {CSRF_HEADER} header (GET /api/csrf) "
            f"or the {CSRF_FIELD} form field",
        )


def _next(request: Request, fields: dict[str, Any]) -> str:
    root: str = request.scope.get("root_path", "")
    target = fields.get("next")
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
        return target if target.startswith(root) else root + target
    return root + "/"


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status, media_type="application/json")


def _problem(dash: Dashboard, request: Request, problem: HTTPProblem) -> Response:
    wants_html = "text/html" in request.headers.get("accept", "")
    api = request.url.path.startswith(request.scope.get("root_path", "") + "/api/")
    if (wants_html and not api) or _is_form(request):
        return dash.render(request, "error.html", problem.status, message=problem.message)
    return JSONResponse({"error": problem.message}, problem.status)


def stream_response(dash: Dashboard, request: Request) -> Response:
    """The Server-Sent Events feed of one page."""
    client = dash.hub.subscribe()

    async def events() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(client.get(), _PING_S)
                except TimeoutError:
                    yield b": ping\n\n"
                    continue
                if not message:
                    return  # the dashboard stops
                yield message
        finally:
            dash.hub.unsubscribe(client)

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def metrics_response(text: str) -> Response:
    """The Prometheus text exposition."""
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


# -- template filters --------------------------------------------------------------------


def _format_time(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _format_ago(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return str(timedelta(seconds=round(max(seconds, 0))))


def _pretty_json(value: Any) -> str:
    return json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False, default=str)


def queue_name(value: str) -> str:
    """A queue name from a path, validated."""
    return validate_queue(value)


def status_names() -> tuple[str, ...]:
    """The job states the jobs page filters by."""
    return _STATUSES


def limit_of(request: Request, default: int = 50) -> int:
    """The ``limit`` query parameter, within bounds."""
    text = request.query_params.get("limit")
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise HTTPProblem(400, f"limit must be an integer, got {text!r}") from None
    if not 1 <= value <= _MAX_LIMIT:
        raise HTTPProblem(400, f"limit must be between 1 and {_MAX_LIMIT}, got {value}")
    return value
