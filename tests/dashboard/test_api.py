"""The dashboard's JSON API, pages and security against a real nats-server and real workers."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2
import pytest

from aioq import Aarq
from aioq.options import CallOptions, UniqueSpec

from ..helpers import eventually
from ..procs import Proc
from .conftest import QUEUE, Stack

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="module")]

XSS = "<img src=x onerror=alert(1)>"


async def token(http: httpx2.AsyncClient) -> dict[str, str]:
    found = (await http.get("/api/csrf")).json()
    return {"X-CSRF-Token": found["token"]}


async def queue_view(http: httpx2.AsyncClient, name: str = QUEUE) -> dict[str, Any] | None:
    for q in (await http.get("/api/queues")).json():
        if q["name"] == name:
            return q  # type: ignore[no-any-return]
    return None


async def test_queues_and_workers_list_the_live_worker(
    http: httpx2.AsyncClient, worker: Proc
) -> None:
    queue = await queue_view(http)
    assert queue is not None
    assert {"name", "queued", "running", "delayed", "waiting", "dead", "paused"} <= set(queue)
    assert {"retrying", "rate_limit", "throughput", "workers", "paused_until"} <= set(queue)
    assert queue["by_level"] == ""  # no job of a level but the default
    assert queue["workers"] >= 1
    assert queue["max_running"] == 50  # app.queue(max_running=...), read from the consumer
    assert f'data-queue="{QUEUE}"' in (page := (await http.get("/")).text)
    assert '<small data-field="max_running"' in page
    assert "max 50 running" in page
    assert '<td class="num" data-field="waiting">0</td>' in page
    workers = (await http.get("/api/workers")).json()
    mine = [w for w in workers if w["pid"] == worker.pid]
    assert len(mine) == 1
    w = mine[0]
    assert w["status"] == "alive"
    assert w["queues"] == [QUEUE]
    assert {"id", "active", "processed", "heartbeat_at", "hostname", "uptime", "version"} <= set(w)


async def test_groups_holding_places_are_listed_on_the_overview(
    http: httpx2.AsyncClient, client: Aarq, worker: Proc
) -> None:
    assert 'id="groups-table"' not in (await http.get("/")).text  # no group holds a place
    sleepy = client.get_task("sleepy").with_options(group="dash-tenant")
    job = await sleepy.enqueue(1.5)

    async def holding() -> Any:
        found = (await http.get("/api/groups")).json()
        return found if found and found[0]["running"] == 1 else None

    [group] = await eventually(holding)
    assert (group["group"], group["max_running"], group["started"]) == ("dash-tenant", 5, None)
    page = (await http.get("/")).text
    assert '<tr data-group="dash-tenant">' in page
    assert '<td class="num" data-field="running">1</td>' in page
    assert "max 5 running" in page
    await job.result(timeout=10)


async def test_job_detail_and_pages_escape_what_a_job_carries(
    http: httpx2.AsyncClient, client: Aarq, worker: Proc
) -> None:
    echo = client.get_task("echo").with_options(priority=8, group="tenant-9", unique_key="page-key")
    job = await echo.enqueue(XSS)
    assert await job.result(timeout=10) == XSS
    detail = (await http.get(f"/api/jobs/{job.id}")).json()
    assert detail["job"]["state"] == "succeeded"
    assert detail["job"]["result"] == XSS
    assert (detail["job"]["priority"], detail["job"]["group"]) == (8, "tenant-9")
    held = UniqueSpec.of("echo", CallOptions(unique_key="page-key"), b"").key
    assert detail["job"]["unique_key"] == held

    async def kept() -> bool:
        queue = await queue_view(http)
        return queue is not None and queue["history"] == 3600

    await eventually(kept)  # the succeeded job's message is kept, with the queue's retention
    assert "history 3600 s" in (await http.get("/")).text
    page = await http.get(f"/jobs/{job.id}")
    assert page.status_code == 200
    assert '<dd id="job-priority">8</dd>' in page.text
    assert '<dd id="job-group">tenant-9</dd>' in page.text
    assert f'<dd id="job-unique-key" class="mono">{held}</dd>' in page.text
    assert XSS not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    listing = await http.get("/jobs", params={"queue": QUEUE, "status": "succeeded"})
    assert job.id in listing.text


async def test_a_foreign_task_name_is_escaped_on_the_dead_letter_page(
    http: httpx2.AsyncClient, client: Aarq, worker: Proc
) -> None:
    broker = await client.connect()
    name = "<script>alert(2)</script>"
    payload = b'{"task": "%s", "id": "foreign-1"}' % name.encode()
    await broker.jobs.publish(QUEUE, payload, "foreign-1", name)

    async def listed() -> bool:
        dead = (await http.get("/api/dead", params={"queue": QUEUE})).json()
        return any(d["id"] == "foreign-1" for d in dead)

    await eventually(listed)
    page = await http.get("/dead", params={"queue": QUEUE})
    assert name not in page.text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page.text


async def test_jobs_are_paged_newest_first_with_a_cursor(
    http: httpx2.AsyncClient, client: Aarq, worker: Proc
) -> None:
    jobs = [await client.enqueue("echo", i) for i in range(25)]
    for job in jobs:
        await job.result(timeout=10)
    ids = {j.id for j in jobs}
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        params = {"queue": QUEUE, "task": "echo", "status": "succeeded", "limit": "10"}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/api/jobs", params=params)).json()
        assert len(page["jobs"]) <= 10
        seen += [r["id"] for r in page["jobs"]]
        cursor = page["cursor"]
        if cursor is None:
            break
    assert ids <= set(seen)
    assert len(seen) == len(set(seen)), "a record was listed twice"
    # Newest first: the last job finished is listed before the first one.
    assert seen.index(jobs[-1].id) < seen.index(jobs[0].id)


async def test_pause_and_resume_need_the_csrf_token_and_same_origin(
    http: httpx2.AsyncClient, worker: Proc
) -> None:
    refused = await http.post(f"/api/queues/{QUEUE}/pause")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["error"]
    headers = await token(http)
    foreign = await http.post(
        f"/api/queues/{QUEUE}/pause", headers={**headers, "Origin": "http://evil.example"}
    )
    assert foreign.status_code == 403
    assert "cross-origin" in foreign.json()["error"]
    assert not (await queue_view(http) or {})["paused"]

    until = time.time() + 3600
    paused = await http.post(
        f"/api/queues/{QUEUE}/pause",
        headers=headers,
        json={"until": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(until))},
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True

    # An action drops the cached counts: the next read shows its effect.
    q = await queue_view(http)
    assert q is not None
    assert q["paused"]
    assert q["paused_until"] == pytest.approx(until, abs=2)
    resumed = await http.post(f"/api/queues/{QUEUE}/resume", headers=headers)
    assert resumed.status_code == 200
    assert not (await queue_view(http) or {"paused": True})["paused"]


async def test_abort_a_running_job(http: httpx2.AsyncClient, client: Aarq, worker: Proc) -> None:
    job = await client.enqueue("sleepy", 30)

    async def running() -> bool:
        return (await job.status()).state == "running"

    await eventually(running)
    answer = await http.post(f"/api/jobs/{job.id}/abort", headers=await token(http))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"id": job.id, "aborted": True}
    assert (await http.get(f"/api/jobs/{job.id}")).json()["job"]["state"] == "aborted"


async def test_retry_and_purge_dead_letters(
    http: httpx2.AsyncClient, client: Aarq, worker: Proc, tmp_path: Path
) -> None:
    flag = tmp_path / "fixed"
    job = await client.enqueue("flaky", str(flag))
    other = await client.enqueue("flaky", str(tmp_path / "never"))

    async def both_dead() -> bool:
        dead = (await http.get("/api/dead", params={"queue": QUEUE, "task": "flaky"})).json()
        return {job.id, other.id} <= {d["id"] for d in dead}

    await eventually(both_dead)
    headers = await token(http)
    flag.touch()
    retried = await http.post(f"/api/dead/{QUEUE}/retry", headers=headers, json={"ids": [job.id]})
    assert retried.json()["retried"] == 1
    assert await job.result(timeout=10) == "fixed"
    purged = await http.post(f"/api/dead/{QUEUE}/purge", headers=headers)
    assert purged.json()["purged"] >= 1
    dead = (await http.get("/api/dead", params={"queue": QUEUE})).json()
    assert other.id not in {d["id"] for d in dead}


async def test_dead_letters_of_a_window_are_listed_and_retried_together(
    http: httpx2.AsyncClient, client: Aarq, worker: Proc, tmp_path: Path
) -> None:
    async def dead_letter(name: str) -> dict[str, Any]:
        job = await client.enqueue("flaky", str(tmp_path / name))

        async def found() -> Any:
            dead = (await http.get("/api/dead", params={"queue": QUEUE, "task": "flaky"})).json()
            return next((d for d in dead if d["id"] == job.id), None)

        return await eventually(found)  # type: ignore[no-any-return]

    before = await dead_letter("a")
    window = [await dead_letter(name) for name in ("b", "c")]
    middle = (before["dead_at"] + window[0]["dead_at"]) / 2
    since = datetime.fromtimestamp(middle, UTC).isoformat()
    params = {"queue": QUEUE, "task": "flaky", "since": since}
    listed = (await http.get("/api/dead", params=params)).json()
    assert [d["id"] for d in listed] == [d["id"] for d in window]
    page = (await http.get("/dead", params={**params, "limit": "50"})).text
    assert "Retry all shown (2)" in page
    assert f'<input type="hidden" name="since" value="{since}">' in page
    assert '<input type="hidden" name="limit" value="50">' in page
    assert (await http.get("/api/dead", params={**params, "until": "soon"})).status_code == 400

    headers = await token(http)
    fields = {"task": "flaky", "since": since, "until": str(time.time() + 60), "limit": 50}
    retried = await http.post(f"/api/dead/{QUEUE}/retry", headers=headers, json=fields)
    assert retried.json() == {"queue": QUEUE, "retried": 2}
    for d in window:  # they fail again, as retries of their dead letter
        record = await eventually(lambda d=d: _retried(client, d["id"]))
        assert record.retry_of is not None
    dead = (await http.get("/api/dead", params={"queue": QUEUE, "task": "flaky"})).json()
    assert before["id"] in {d["id"] for d in dead}  # outside the window: not retried


async def _retried(client: Aarq, job_id: str) -> Any:
    record = await (await client.job(job_id)).status()
    return record if record.retry_of is not None and record.state.value == "failed" else None


async def test_enqueue_from_the_api_and_bad_input_answers(
    http: httpx2.AsyncClient, client: Aarq, worker: Proc
) -> None:
    headers = await token(http)
    made = await http.post("/api/jobs", headers=headers, json={"task": "echo", "args": [7]})
    assert made.status_code == 200, made.text
    assert await (await client.job(made.json()["id"])).result(timeout=10) == 7
    bad = await http.post("/api/jobs", headers=headers, json={"task": "echo", "args": "[7"})
    assert bad.status_code == 400
    assert "args must be a JSON array" in bad.json()["error"]
    unknown = await http.post("/api/jobs", headers=headers, json={"task": "nope"})
    assert unknown.status_code == 400
    assert "unknown task 'nope'" in unknown.json()["error"]
    assert (await http.get("/api/jobs", params={"cursor": "x"})).status_code == 400
    assert (await http.get("/api/jobs", params={"limit": "0"})).status_code == 400
    missing = await http.get("/api/jobs/no-such-job")
    assert missing.status_code == 404
    assert "no-such-job" in missing.json()["error"]


async def test_a_killed_worker_turns_dead_and_stays_listed(
    http: httpx2.AsyncClient, stack: Stack, worker: Proc
) -> None:
    victim = stack.start_worker()

    async def status() -> str | None:
        for w in (await http.get("/api/workers")).json():
            if w["pid"] == victim.pid:
                return str(w["status"])
        return None

    await eventually(lambda: _is(status, "alive"), timeout=20)
    victim.send(signal.SIGKILL)
    await eventually(lambda: _is(status, "dead"), timeout=10)
    await asyncio.sleep(0.5)
    assert await status() == "dead", "a dead worker must stay listed"


async def _is(status: Any, wanted: str) -> bool:
    return bool(await status() == wanted)


async def test_stream_sends_worker_queue_and_job_events(
    http: httpx2.AsyncClient, client: Aarq, worker: Proc
) -> None:
    seen: set[str] = set()
    job_seen = asyncio.Event()

    async def read() -> None:
        async with http.stream("GET", "/api/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                    seen.add(name)
                elif line.startswith("data: ") and name == "events" and job_id in line:
                    job_seen.set()
                    return

    job_id = "sse-job-1"
    before = await live_pages(http)
    reader = asyncio.create_task(read())
    await eventually(lambda: _true("workers" in seen and "queues" in seen))
    assert await live_pages(http) == before + 1
    job = await client.get_task("echo").with_options(job_id=job_id).enqueue("hi")
    await job.result(timeout=10)
    async with asyncio.timeout(10):
        await job_seen.wait()
    reader.cancel()
    # A closed page is forgotten: the feed does not leak.
    await eventually(lambda: _equals(live_pages(http), before))


async def _equals(value: Any, wanted: int) -> bool:
    return bool(await value == wanted)


async def live_pages(http: httpx2.AsyncClient) -> int:
    text = (await http.get("/metrics")).text
    line = next(x for x in text.splitlines() if x.startswith("aioq_dashboard_live_pages "))
    return int(line.split()[1])


async def _true(value: bool) -> bool:
    return value


async def test_metrics_and_schedules(http: httpx2.AsyncClient, client: Aarq, worker: Proc) -> None:
    delayed = await client.get_task("sleepy").with_options(delay=600).enqueue(1)
    text = (await http.get("/metrics")).text
    assert f'aioq_queue_queued{{queue="{QUEUE}"}}' in text
    assert 'aioq_workers{status="alive"}' in text
    schedules = (await http.get("/api/schedules")).json()
    assert [r["name"] for r in schedules["repeatable"]] == ["hourly"]
    assert schedules["repeatable"][0]["next_fire"] > time.time()
    held = [d for d in schedules["delayed"] if d["id"] == delayed.id]
    assert held
    assert held[0]["task"] == "sleepy"
    assert held[0]["due_at"] == pytest.approx(time.time() + 600, abs=30)
    await delayed.abort()
    assert (await http.get("/schedules")).status_code == 200


async def test_the_command_binds_loopback_and_says_so(stack: Stack) -> None:
    assert stack.dashboard is not None
    assert "http://127.0.0.1:" in stack.dashboard.log()
    assert "loopback only" in stack.dashboard.log()


async def test_basic_auth_and_read_only(stack: Stack, worker: Proc) -> None:
    _, base = stack.start_dashboard("--auth", "ops:s3cret", "--read-only")
    async with httpx2.AsyncClient(base_url=base, timeout=10) as anonymous:
        for path in ("/", "/api/queues", "/api/stream", "/metrics", "/static/dashboard.js"):
            answer = await anonymous.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"].startswith("Basic")
        wrong = await anonymous.get("/", auth=("ops", "wrong"))
        assert wrong.status_code == 401
    async with httpx2.AsyncClient(base_url=base, timeout=10, auth=("ops", "s3cret")) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert 'method="post"' not in page.text
        assert "read-only" in page.text
        headers = await token(http)
        refused = await http.post(f"/api/queues/{QUEUE}/pause", headers=headers)
        assert refused.status_code == 403
        assert "read-only" in refused.json()["error"]
        window = {"since": "2000-01-01", "limit": 5}
        refused = await http.post(f"/api/dead/{QUEUE}/retry", headers=headers, json=window)
        assert refused.status_code == 403
        assert 'id="retry-all"' not in (await http.get("/dead", params={"queue": QUEUE})).text
