"""The dashboard mounted in another ASGI app, and the command's errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from aioq import Aarq
from aioq.dashboard import create_dashboard

from ..procs import run_cli
from .conftest import APP, delete_streams
from .dash_app import build


@pytest.fixture
async def own_app(nats_url: str) -> AsyncIterator[Aarq]:
    prefix = f"m{uuid.uuid4().hex[:10]}"
    application = build(prefix, servers=nats_url)
    yield application
    await application.close()
    await delete_streams(nats_url, prefix)


async def test_mounted_under_a_path_it_starts_on_the_first_request_and_links_under_it(
    own_app: Aarq,
) -> None:
    dashboard = create_dashboard(own_app)
    web = Starlette(routes=[Mount("/ops/aioq", dashboard)])
    transport = httpx2.ASGITransport(app=web)
    async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as http:
        page = await http.get("/ops/aioq/")
        assert page.status_code == 200, page.text
        assert 'href="/ops/aioq/workers"' in page.text
        assert 'src="/ops/aioq/static/dashboard.js"' in page.text
        assert (await http.get("/ops/aioq/static/dashboard.js")).status_code == 200
        job = await own_app.enqueue("echo", 1)
        answer = await http.get(f"/ops/aioq/api/jobs/{job.id}")
        assert answer.json()["job"]["state"] == "queued"
        token = (await http.get("/ops/aioq/api/csrf")).json()["token"]
        made = await http.post(
            "/ops/aioq/api/jobs",
            data={"task": "echo", "args": "[2]", "csrf_token": token, "next": "job"},
        )
        assert made.status_code == 303
        assert made.headers["location"].startswith("/ops/aioq/jobs/")
    assert dashboard.state.dashboard.hub.running
    await dashboard.state.dashboard.aclose()
    assert not own_app.connected


def test_the_command_refuses_a_malformed_auth() -> None:
    result = run_cli("dashboard", APP, "--auth", "nopassword")
    assert result.returncode == 2
    assert "--auth takes USER:PASSWORD" in result.stderr


def test_the_command_says_when_nats_is_unreachable() -> None:
    result = run_cli("dashboard", APP, "-s", "nats://127.0.0.1:1", "--port", "0")
    assert result.returncode == 1
    assert "cannot reach NATS at nats://127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
