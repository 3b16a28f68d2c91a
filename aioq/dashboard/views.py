"""The dashboard's pages, API endpoints and actions; all data comes through `DashboardData`."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from aioq.dashboard.app import (
    HTTPProblem,
    limit_of,
    metrics_response,
    queue_name,
    status_names,
    stream_response,
)
from aioq.dashboard.metrics import render_metrics
from aioq.deadletter import DeadEntry
from aioq.moments import parse_moment
from aioq.naming import validate_job_id

if TYPE_CHECKING:
    from aioq.dashboard.app import Dashboard

__all__ = [
    "abort",
    "api_csrf",
    "api_dead",
    "api_events",
    "api_groups",
    "api_job",
    "api_jobs",
    "api_queues",
    "api_schedules",
    "api_workers",
    "dead_page",
    "enqueue",
    "job_page",
    "jobs_page",
    "metrics",
    "overview_page",
    "pause",
    "purge_dead",
    "resume",
    "retry_dead",
    "schedules_page",
    "stream",
    "workers_page",
]


def _json(value: Any) -> Response:
    return Response(msgspec.json.encode(value), media_type="application/json")


def _query(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


# -- pages -------------------------------------------------------------------------------


async def overview_page(dash: Dashboard, request: Request) -> Response:
    """The overview: every queue, the worker count, recent events, the enqueue form."""
    queues = await dash.hub.queues()
    workers = dash.hub.workers()
    groups = await dash.data.groups()
    return dash.render(
        request,
        "overview.html",
        queues=queues,
        groups=groups if any(g["running"] for g in groups) else [],
        workers=workers,
        alive=sum(1 for w in workers if w["status"] != "dead"),
        events=list(reversed(dash.hub.recent))[:20],
        tasks=dash.data.task_names(),
    )


async def workers_page(dash: Dashboard, request: Request) -> Response:
    """Every worker with its liveness."""
    return dash.render(request, "workers.html", workers=dash.hub.workers())


async def jobs_page(dash: Dashboard, request: Request) -> Response:
    """Job records by queue, status and task, a page at a time (``?id=`` opens one job)."""
    job_id = _query(request, "id")
    if job_id:
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/jobs/{validate_job_id(job_id)}", status_code=303)
    filters = {k: _query(request, k) for k in ("queue", "status", "task")}
    page = await dash.data.jobs(
        **filters, cursor=_query(request, "cursor"), limit=limit_of(request)
    )
    next_query = {k: v for k, v in filters.items() if v}
    if page.cursor:
        next_query["cursor"] = page.cursor
    return dash.render(
        request,
        "jobs.html",
        page=page,
        filters=filters,
        statuses=status_names(),
        queues=[q["name"] for q in await dash.hub.queues()],
        next_query=next_query,
    )


async def job_page(dash: Dashboard, request: Request) -> Response:
    """One job: record, arguments, result or error, timeline."""
    job_id = validate_job_id(request.path_params["job_id"])
    detail = await dash.data.job(job_id)
    return dash.render(
        request,
        "job.html",
        job=detail.record,
        message=detail.message,
        dead=detail.dead,
        timeline=dash.hub.timeline(job_id),
    )


async def dead_page(dash: Dashboard, request: Request) -> Response:
    """Dead letters, filtered, with retry and purge."""
    filters = {k: _query(request, k) for k in _DEAD_FILTERS}
    queue, limit = _query(request, "queue"), limit_of(request, 100)
    entries = await dash.data.dead(queue, **_dead_window(filters), limit=limit)
    return dash.render(
        request,
        "dead.html",
        entries=[_dead_view(e) for e in entries],
        queue=queue,
        filters=filters,
        limit=limit,
        queues=[q["name"] for q in await dash.hub.queues() if q["dead"]],
    )


async def schedules_page(dash: Dashboard, request: Request) -> Response:
    """Repeatable jobs and delayed jobs."""
    return dash.render(
        request,
        "schedules.html",
        schedules=await dash.data.schedules(),
        delayed=await dash.data.delayed(),
        now=time.time(),
    )


async def metrics(dash: Dashboard, request: Request) -> Response:
    """Queue and worker figures in the Prometheus text format."""
    text = render_metrics(await dash.hub.queues(), dash.hub.workers(), dash.hub.clients)
    return metrics_response(text)


async def stream(dash: Dashboard, request: Request) -> Response:
    """The live feed (Server-Sent Events)."""
    return stream_response(dash, request)


# -- API reads ---------------------------------------------------------------------------


async def api_queues(dash: Dashboard, request: Request) -> Response:
    """``GET /api/queues``."""
    return _json(await dash.hub.queues())


async def api_groups(dash: Dashboard, request: Request) -> Response:
    """``GET /api/groups``: the places and starts each group holds, and this app's limits."""
    return _json(await dash.data.groups())


async def api_workers(dash: Dashboard, request: Request) -> Response:
    """``GET /api/workers``."""
    return _json(dash.hub.workers())


async def api_jobs(dash: Dashboard, request: Request) -> Response:
    """``GET /api/jobs?queue=&status=&task=&cursor=&limit=``."""
    page = await dash.data.jobs(
        queue=_query(request, "queue"),
        status=_query(request, "status"),
        task=_query(request, "task"),
        cursor=_query(request, "cursor"),
        limit=limit_of(request),
    )
    return _json(
        {"jobs": page.jobs, "cursor": page.cursor, "scanned": page.scanned, "partial": page.partial}
    )


async def api_job(dash: Dashboard, request: Request) -> Response:
    """``GET /api/jobs/{id}``."""
    job_id = validate_job_id(request.path_params["job_id"])
    detail = await dash.data.job(job_id)
    return _json(
        {
            "job": detail.record,
            "message": detail.message,
            "dead": _dead_letter(detail.dead) if detail.dead else None,
            "events": dash.hub.timeline(job_id),
        }
    )


async def api_dead(dash: Dashboard, request: Request) -> Response:
    """``GET /api/dead?queue=&task=&reason=&error_type=&since=&until=&limit=``."""
    filters = _dead_window({k: _query(request, k) for k in _DEAD_FILTERS})
    entries = await dash.data.dead(
        _query(request, "queue"), **filters, limit=limit_of(request, 100)
    )
    return _json([_dead_view(e) for e in entries])


#: The filters of the dead letters: by task, reason, error type, and a window of time.
_DEAD_FILTERS = ("task", "reason", "error_type", "since", "until")


def _dead_window(filters: dict[str, Any]) -> dict[str, Any]:
    """`filters` with `since` and `until` as unix seconds (given as those or ISO 8601)."""
    found = {k: filters.get(k) or None for k in _DEAD_FILTERS}
    for name in ("since", "until"):
        text = found[name]
        if text is None:
            continue
        try:
            found[name] = parse_moment(str(text).strip())
        except ValueError as e:
            raise HTTPProblem(400, f"{name}: {e}") from None
    return found


async def api_schedules(dash: Dashboard, request: Request) -> Response:
    """``GET /api/schedules``."""
    return _json({"repeatable": await dash.data.schedules(), "delayed": await dash.data.delayed()})


async def api_events(dash: Dashboard, request: Request) -> Response:
    """``GET /api/events``: the recent events this dashboard saw."""
    return _json(list(dash.hub.recent))


async def api_csrf(dash: Dashboard, request: Request) -> Response:
    """``GET /api/csrf``: the token state-changing requests carry."""
    return _json({"token": dash.csrf_token, "header": "X-CSRF-Token"})


# -- actions -----------------------------------------------------------------------------


async def abort(dash: Dashboard, request: Request, fields: dict[str, Any]) -> Any:
    """``POST /api/jobs/{id}/abort``."""
    job_id = validate_job_id(request.path_params["job_id"])
    return {"id": job_id, "aborted": await dash.data.abort(job_id)}


async def pause(dash: Dashboard, request: Request, fields: dict[str, Any]) -> Any:
    """``POST /api/queues/{name}/pause`` (``until`` ISO 8601 or ``seconds``, optional)."""
    name = queue_name(request.path_params["name"])
    until = _until(fields.get("until"), fields.get("seconds"))
    end = await dash.data.pause(name, until)
    return {"queue": name, "paused": True, "until": end.timestamp() if end else None}


async def resume(dash: Dashboard, request: Request, fields: dict[str, Any]) -> Any:
    """``POST /api/queues/{name}/resume``."""
    name = queue_name(request.path_params["name"])
    await dash.data.resume(name)
    return {"queue": name, "paused": False}


async def retry_dead(dash: Dashboard, request: Request, fields: dict[str, Any]) -> Any:
    """``POST /api/dead/{queue}/retry``: ``ids``, or those matching the filters.

    Filters: task, reason, error_type, since, until; matching ones go oldest first, at most
    ``limit`` of them if given (the "Retry all shown" button sends the page's limit).
    """
    name = queue_name(request.path_params["name"])
    ids = fields.get("ids") or fields.get("id")
    if isinstance(ids, str):
        ids = [i for i in ids.replace(",", " ").split() if i]
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise HTTPProblem(400, "ids must be a list of job ids")
    limit = fields.get("limit") or None
    if limit is not None and not (str(limit).isdigit() and int(limit) >= 1):
        raise HTTPProblem(400, f"limit must be a whole number >= 1, got {limit!r}")
    filters = _dead_window(fields)
    count = await dash.data.retry_dead(
        name, ids or None, **filters, limit=int(limit) if limit else None
    )
    return {"queue": name, "retried": count}


async def purge_dead(dash: Dashboard, request: Request, fields: dict[str, Any]) -> Any:
    """``POST /api/dead/{queue}/purge``."""
    name = queue_name(request.path_params["name"])
    return {"queue": name, "purged": await dash.data.purge_dead(name)}


async def enqueue(dash: Dashboard, request: Request, fields: dict[str, Any]) -> Any:
    """``POST /api/jobs``: ``task``, ``args`` (JSON array), ``kwargs`` (JSON object)."""
    task = fields.get("task")
    if not isinstance(task, str) or not task:
        raise HTTPProblem(400, "task is required: the name of a registered task")
    args = _json_field(fields.get("args"), list, "args", "a JSON array")
    kwargs = _json_field(fields.get("kwargs"), dict, "kwargs", "a JSON object")
    job_id = await dash.data.enqueue(task, args, kwargs)
    if fields.get("next") == "job":
        fields["next"] = f"/jobs/{job_id}"
    return {"id": job_id, "task": task}


def _json_field(value: Any, kind: type, name: str, what: str) -> Any:
    if value is None or value == "":
        return kind()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as e:
            raise HTTPProblem(400, f"{name} must be {what}: {e}") from None
    if not isinstance(value, kind):
        raise HTTPProblem(400, f"{name} must be {what}, got {type(value).__name__}")
    return value


def _until(until: Any, seconds: Any) -> datetime | None:
    """A pause end from an ISO 8601 time (``until``) or a number of seconds (``seconds``)."""
    if seconds not in (None, ""):
        try:
            value = float(seconds)
        except (TypeError, ValueError):
            raise HTTPProblem(400, f"seconds must be a number, got {seconds!r}") from None
        if value <= 0:
            raise HTTPProblem(400, f"seconds must be > 0, got {value}")
        return datetime.now(UTC) + timedelta(seconds=value)
    if until in (None, ""):
        return None
    if not isinstance(until, str):
        raise HTTPProblem(400, "until must be an ISO 8601 date and time")
    try:
        moment = datetime.fromisoformat(until.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HTTPProblem(
            400, f"until must be an ISO 8601 date and time (2026-01-31T09:00Z), got {until!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment <= datetime.now(UTC):
        raise HTTPProblem(400, f"until {until!r} has passed already")
    return moment


def _dead_letter(letter: Any) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(letter)
    view["payload"] = letter.payload.decode("utf-8", errors="replace")
    return view


def _dead_view(entry: DeadEntry) -> dict[str, Any]:
    view = _dead_letter(entry.letter)
    view["seq"] = entry.seq
    return view
