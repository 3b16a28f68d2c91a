"""The dashboard in a real browser: Playwright for Python driving Debian's Chromium.

Set ``AIOQ_SCREENSHOTS=docs/img`` to refresh the screenshots docs/dashboard.md shows.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio

from aioq import Aarq
from aioq.wire import Event, EventKind, encode

from ..procs import ROOT, Proc
from .conftest import QUEUE, Stack
from .test_api import XSS, eventually

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

playwright_api = pytest.importorskip("playwright.async_api")
Page = playwright_api.Page
expect = playwright_api.expect

ACTIONS = re.compile("Pause|Resume|Retry|Purge|Abort|Enqueue")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as p:
        launched = await p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(browser: Any) -> AsyncIterator[Page]:
    """A fresh tab; every dialog it opens is recorded in ``page.dialogs``."""
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    tab = await context.new_page()
    tab.set_default_timeout(10_000)
    dialogs: list[str] = []

    async def record(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    tab.on("dialog", record)
    tab.dialogs = dialogs
    try:
        yield tab
    finally:
        await context.close()


async def shot(page: Page, name: str, tmp_path: Path) -> None:
    """Save a full-page screenshot (into $AIOQ_SCREENSHOTS if set)."""
    folder = os.environ.get("AIOQ_SCREENSHOTS")
    target = (ROOT / folder) if folder else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(target / f"{name}.png"), full_page=True)


async def wait_live(page: Page) -> None:
    await expect(page.locator("#live")).to_have_text("live")


async def test_overview_loads_with_a_live_worker(
    page: Page, stack: Stack, worker: Proc, client: Aarq, tmp_path: Path
) -> None:
    jobs = [await client.enqueue("echo", i) for i in range(12)]
    for job in jobs:
        await job.result(timeout=10)
    await client.get_task("sleepy").with_options(delay=600).enqueue(1)
    await page.goto(stack.base + "/")
    await wait_live(page)
    row = page.locator(f'#queues-table tr[data-queue="{QUEUE}"]')
    await expect(row).to_be_visible()
    await expect(row.locator('[data-field="workers"]')).not_to_have_text("0")
    await expect(page.locator("#worker-count")).not_to_have_text("0")
    await shot(page, "overview", tmp_path)
    await page.goto(stack.base + "/jobs")
    await expect(page.locator("#jobs-table tbody tr[data-job]").first).to_be_visible()
    await shot(page, "jobs", tmp_path)
    await page.goto(stack.base + "/schedules")
    await expect(page.locator("#schedules-table")).to_contain_text("hourly")
    await shot(page, "schedules", tmp_path)


async def test_a_killed_worker_turns_dead_without_a_reload(
    page: Page, stack: Stack, worker: Proc, tmp_path: Path
) -> None:
    victim = stack.start_worker()

    async def victim_id() -> str | None:
        for w in httpx2.get(stack.base + "/api/workers", timeout=5).json():
            if w["pid"] == victim.pid and w["status"] == "alive":
                return str(w["id"])
        return None

    worker_id = await eventually(victim_id, timeout=20)
    await page.goto(stack.base + "/workers")
    await wait_live(page)
    status = page.locator(f'tr[data-worker="{worker_id}"] .status')
    await expect(status).to_have_text("alive")
    await page.evaluate("window.__sameDocument = true")
    victim.send(signal.SIGKILL)
    await expect(status).to_have_text("dead", timeout=10_000)
    await expect(page.locator(f'tr[data-worker="{worker_id}"]')).to_have_class("worker-dead")
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
    await shot(page, "workers", tmp_path)


async def test_a_dead_letter_is_retried_from_the_page_and_succeeds(
    page: Page, stack: Stack, worker: Proc, client: Aarq, tmp_path: Path
) -> None:
    flag = tmp_path / "fixed"
    job = await client.enqueue("flaky", str(flag))

    async def dead() -> bool:
        return (await job.status()).state == "failed"  # type: ignore[attr-defined]

    await eventually(dead, timeout=20)
    await page.goto(f"{stack.base}/dead?queue={QUEUE}")
    row = page.locator(f'#dead-table tr[data-job="{job.id}"]')
    await expect(row).to_contain_text("RuntimeError: not fixed yet")
    await shot(page, "dead", tmp_path)
    flag.touch()
    await row.get_by_role("button", name="Retry").click()
    await page.wait_for_url(f"{stack.base}/dead")
    assert await job.result(timeout=10) == "fixed"
    await page.goto(f"{stack.base}/jobs/{job.id}")
    await expect(page.locator("#job-state")).to_have_text("succeeded")


async def test_the_job_state_follows_the_latest_event_not_the_last_to_arrive(
    page: Page, stack: Stack, worker: Proc, client: Aarq
) -> None:
    job = await client.enqueue("echo", "ordered")
    await job.result(timeout=10)
    finished = (await job.status()).finished_at  # type: ignore[attr-defined]
    assert finished is not None
    await page.goto(f"{stack.base}/jobs/{job.id}")
    await wait_live(page)
    state = page.locator("#job-state")
    await expect(state).to_have_text("succeeded")
    broker = await client.connect()

    async def arrive(kind: EventKind, at: float) -> None:
        event = Event(kind=kind, id=job.id, queue=QUEUE, at=at, task="echo")
        await broker.events.publish(QUEUE, kind.value, encode(event))

    # An "enqueued" timed before the outcome, arriving after it (a producer's event can).
    await arrive(EventKind.ENQUEUED, finished - 1)
    items = page.locator("#job-timeline li")
    await expect(items.last).to_contain_text("enqueued")
    await expect(state).to_have_text("succeeded")
    await arrive(EventKind.STARTED, time.time() + 1)
    await expect(state).to_have_text("running")


async def test_pause_and_resume_from_the_page(
    page: Page, stack: Stack, worker: Proc, client: Aarq
) -> None:
    await page.goto(stack.base + "/")
    await wait_live(page)
    row = page.locator(f'#queues-table tr[data-queue="{QUEUE}"]')
    await row.get_by_role("button", name="Pause").click()
    await page.wait_for_load_state()
    await expect(row.locator('[data-field="state"]')).to_contain_text("paused")
    assert await client.queue_paused_until(QUEUE) is not None
    await row.get_by_role("button", name="Resume").click()
    await page.wait_for_load_state()
    await expect(row.locator('[data-field="state"]')).to_have_text("running")
    deadline = time.monotonic() + 5
    while await client.queue_paused_until(QUEUE) is not None:
        assert time.monotonic() < deadline, "the queue is still paused"
        await asyncio.sleep(0.1)


async def test_a_script_in_job_data_stays_inert(
    page: Page, stack: Stack, worker: Proc, client: Aarq, tmp_path: Path
) -> None:
    await page.goto(stack.base + "/")
    await wait_live(page)
    job = await client.enqueue("slow_echo", XSS, 2.0)
    # The live event list renders it as it arrives.
    await expect(page.locator("#events-list")).to_contain_text(job.id)
    await page.goto(f"{stack.base}/jobs/{job.id}")
    await expect(page.locator("#job-args")).to_contain_text(XSS)
    await shot(page, "job", tmp_path)
    await job.result(timeout=10)
    await page.reload()
    await expect(page.locator("#job-result")).to_contain_text(XSS)
    await expect(page.locator("main img")).to_have_count(0)
    await page.goto(f"{stack.base}/jobs?queue={QUEUE}")
    await page.wait_for_timeout(300)  # let any injected handler fire
    assert page.dialogs == []


async def test_read_only_mode_has_no_action_buttons(
    page: Page, stack: Stack, worker: Proc, client: Aarq
) -> None:
    _, base = stack.start_dashboard("--read-only")
    job = await client.enqueue("flaky", "/nonexistent/flag")
    await eventually(lambda: _failed(job))
    for path in ("/", f"/dead?queue={QUEUE}", f"/jobs/{job.id}", "/workers", "/jobs"):
        await page.goto(base + path)
        await expect(page.locator(".badge")).to_have_text("read-only")
        assert await page.locator('form[method="post"]').count() == 0, path
        actions = page.get_by_role("button", name=ACTIONS)
        assert await actions.count() == 0, path
    # The same pages with actions, for contrast: the selector finds them there.
    await page.goto(f"{stack.base}/dead?queue={QUEUE}")
    assert await page.get_by_role("button", name=ACTIONS).count() > 0


async def _failed(job: object) -> bool:
    return (await job.status()).state == "failed"  # type: ignore[attr-defined]


async def test_enqueue_from_the_form_then_abort_from_the_job_page(
    page: Page, stack: Stack, worker: Proc, client: Aarq
) -> None:
    await page.goto(stack.base + "/")
    form = page.locator("#enqueue-form")
    await form.locator('select[name="task"]').select_option("sleepy")
    await form.locator('textarea[name="args"]').fill("[30]")
    await form.get_by_role("button", name="Enqueue").click()
    await page.wait_for_url(re.compile(r"/jobs/[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    job = await client.job(job_id)

    async def running() -> bool:
        return (await job.status()).state == "running"

    await eventually(running)
    await page.reload()
    async with page.expect_navigation():
        await page.get_by_role("button", name="Abort").click()
    assert page.url == f"{stack.base}/jobs/{job_id}", await page.content()
    await expect(page.locator("#job-state")).to_have_text("aborted")
    assert (await job.status()).state == "aborted"
