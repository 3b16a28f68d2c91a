"""aioq.testing: the pytest plugin's fixtures and the harness behind them."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from aioq import Aarq, ConfigError, Context
from aioq._nats.prefix import _owned_by
from aioq.embedded import EmbeddedNats
from aioq.naming import Names
from aioq.testing.harness import (
    ShutdownReport,
    bind_app,
    delete_prefix,
    start_worker,
    wait_until_idle,
)
from aioq.testing.pytest_plugin import AppFactory, WorkerFactory

from ..procs import cli_env

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="session")
def aioq_server(nats_server: EmbeddedNats) -> EmbeddedNats:
    """The plugin's fixtures use the session server of tests/conftest.py here."""
    return nats_server


def make_app() -> Aarq:
    application = Aarq("nats://prod.invalid:4222", prefix="prod", token="secret", ack_wait=2.0)

    @application.task(queue="slow")
    async def nap(ctx: Context, seconds: float) -> float:
        await asyncio.sleep(seconds)
        return seconds

    return application


async def stream_names(url: str) -> set[str]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        return {info.config.name for info in await js.streams_info() if info.config.name}
    finally:
        await nc.close()


async def test_bind_then_unbind_restores_the_app_and_deletes_its_prefix(nats_url: str) -> None:
    application = make_app()
    binding = bind_app(application, nats_url)
    assert application.settings.servers == [nats_url]
    assert application.settings.token is None
    assert application.prefix == binding.prefix != "prod"
    running = await start_worker(application, shutdown_grace=1)
    job = await application.enqueue("nap", 0.01)
    assert await job.result(timeout=10) == 0.01
    await running.stop()
    stem = application.names.jobs_stream.removesuffix("_JOBS")
    assert {f"{stem}_JOBS", f"KV_{binding.prefix}-results"} <= await stream_names(nats_url)

    await binding.unbind()
    left = {s for s in await stream_names(nats_url) if binding.prefix in s or stem in s}
    assert left == set()
    assert (application.prefix, application.settings.servers) == (
        "prod",
        ["nats://prod.invalid:4222"],
    )
    assert application.settings.token == "secret"
    assert not application.connected


async def test_a_connected_app_cannot_be_bound(nats_url: str) -> None:
    application = Aarq(nats_url, prefix="tbind")
    async with application:
        with pytest.raises(ConfigError, match="already connected"):
            bind_app(application, nats_url)
    await delete_prefix(nats_url, "tbind")


def test_a_prefix_owns_only_its_own_streams() -> None:
    names = Names("shop")
    for mine in ("SHOP_JOBS", "SHOP_DEAD", "SHOP_AUDIT", "KV_shop-results", "OBJ_shop-files"):
        assert _owned_by(mine, names), mine
    for other in ("SHOP_X_JOBS", "KV_shop-x-results", "SHOPX_JOBS", "KV_shopx-workers", "JOBS"):
        assert not _owned_by(other, names), other


async def test_wait_until_idle_says_which_queue_is_busy(aioq_app_factory: AppFactory) -> None:
    application = await aioq_app_factory(make_app())
    await application.enqueue("nap", 0)  # no worker: it stays queued
    with pytest.raises(TimeoutError, match=r"\{'slow': 1\}"):
        await wait_until_idle(application, ["slow"], timeout=0.3)


async def test_simulated_shutdown_with_a_short_grace_reports_the_cancelled_job(
    aioq_app_factory: AppFactory, aioq_worker: WorkerFactory
) -> None:
    application = await aioq_app_factory(make_app())
    worker = await aioq_worker(["slow"], shutdown_grace=0.2)
    long, short = await application.enqueue("nap", 30), await application.enqueue("nap", 0)
    assert await short.result(timeout=10) == 0
    report = await worker.simulate_shutdown([long, short], running_at_least=1)
    assert report.cancelled == 1
    assert report.interrupted == [long]  # back in its queue, for the next worker
    assert report.finished == [short]
    assert report.lost == []
    report.assert_nothing_lost()
    with pytest.raises(AssertionError, match="1 in-flight jobs were cancelled"):
        report.assert_clean()


async def test_a_job_neither_settled_nor_queued_is_lost(aioq_app_factory: AppFactory) -> None:
    application = await aioq_app_factory(make_app())
    job = await application.enqueue("nap", 0)
    broker = await application.connect()
    assert await broker.jobs.remove("slow", job.id)
    report = ShutdownReport()
    await report.account(application, [job])
    assert report.lost == [job]
    with pytest.raises(AssertionError, match="lost"):
        report.assert_nothing_lost()


async def test_workers_run_only_on_apps_bound_to_the_test_server(
    aioq_app_factory: AppFactory, aioq_worker: WorkerFactory
) -> None:
    with pytest.raises(RuntimeError, match="0 apps are bound"):
        await aioq_worker(["slow"])
    with pytest.raises(RuntimeError, match="not bound to the test server"):
        await aioq_worker(["slow"], app=make_app())
    application = await aioq_app_factory(make_app())
    assert await aioq_app_factory(application) is application  # binding twice is a no-op
    running = await aioq_worker.run_until_idle()  # every queue of the app's tasks
    assert running.stopped
    assert running.queues == ["slow"]


async def test_unbound_prefix_is_gone_after_the_test(nats_url: str) -> None:
    factory = AppFactory(nats_url, "tgone-0001")
    application = await factory(make_app())
    await application.enqueue("nap", 0)
    await factory.unbind_all()
    nc = await nats.connect(nats_url)
    try:
        with pytest.raises(NotFoundError):
            await nc.jetstream().stream_info(Names("tgone-0001").jobs_stream)
    finally:
        await nc.close()
    assert application.prefix == "prod"


def write_project(root: Path, ini: str, test: str) -> None:
    (root / "pytest.ini").write_text(textwrap.dedent(ini))
    (root / "test_it.py").write_text(textwrap.dedent(test))


def run_pytest(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_aioq_app_without_the_ini_option_explains_what_to_do(tmp_path: Path) -> None:
    write_project(
        tmp_path,
        """\
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        """,
        """\
        async def test_uses_the_app(aioq_app):
            pass
        """,
    )
    result = run_pytest(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "set `aioq_app = mypackage.tasks:app`" in result.stdout, result.stdout
