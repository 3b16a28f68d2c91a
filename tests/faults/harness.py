"""One scenario's world: a nats-server on its own store, real worker processes, a producer.

The harness injects the faults (and records their windows), runs the producer in its own
event loop, waits for the queue to drain and reads the dead letters into the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from aioq import Aarq
from aioq.embedded import EmbeddedNats
from tests.helpers import eventually
from tests.procs import Proc, Procs, cli_env

from . import fault_app
from .checker import Report, check
from .history import EXEC_GLOB, Recorder, load
from .logs import log_problems
from .proxy import Proxy

APP_PATH = "tests.faults.fault_app:app"
STARTED = "started: queues="
# A producer gives a job up (its outcome stays unknown) after retrying it this long.
ENQUEUE_HORIZON_S = 60.0


class Completions:
    """Follows the execution logs incrementally: which jobs completed so far."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.jobs: set[str] = set()
        self.runs = 0
        self._offsets: dict[Path, int] = {}

    def refresh(self) -> set[str]:
        for path in self.directory.glob(EXEC_GLOB):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as log:
                log.seek(offset)
                chunk = log.read()
            end = chunk.rfind(b"\n") + 1  # a line being written is read next time
            for line in chunk[:end].splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if record.get("kind") == "done":
                        self.jobs.add(record["job"])
                        self.runs += 1
            self._offsets[path] = offset + end
        return self.jobs


class Lab:
    """Server, workers, producer and history of one scenario under ``root / name``."""

    def __init__(self, root: Path, name: str, *, ack_wait: float = 1.5) -> None:
        self.name = name
        self.dir = root / name
        self.history_dir = self.dir / "history"
        self.recorder = Recorder(self.history_dir)
        self.ack_wait = ack_wait
        self.prefix = f"f{uuid.uuid4().hex[:10]}"
        self.server = EmbeddedNats(store_dir=self.dir / "store", log_file=self.dir / "nats.log")
        self.procs = Procs(self.dir, {})
        self.workers: list[Proc] = []
        self.proxy: Proxy | None = None
        self.completions = Completions(self.history_dir)
        self.acked: set[str] = set()
        self.unknown: set[str] = set()
        self.dead: dict[str, str] = {}
        self.enqueue_failures = 0
        self._app: Aarq | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Lab:
        self.dir.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.server.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.procs.reap_all()
        if self._app is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(10):
                    await self._app.close()
        if self.proxy is not None:
            await self.proxy.close()
        await asyncio.to_thread(self.server.stop)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.server.port}"

    async def app(self) -> Aarq:
        """The producer's app (same tasks and prefix as the workers), connected."""
        if self._app is None:
            self._app = fault_app.build(self.prefix, self.ack_wait, self.url)
            await self._app.connect()
        return self._app

    async def start_proxy(self) -> Proxy:
        self.proxy = Proxy(self.server.port or 0)
        await self.proxy.start()
        return self.proxy

    # -- workers -----------------------------------------------------------------------

    def worker(
        self,
        *,
        concurrency: int = 20,
        grace: float = 5.0,
        url: str | None = None,
        env: dict[str, str] | None = None,
        args: Iterable[str] = (),
    ) -> Proc:
        """Start an ``aioq worker`` process on the scenario app (not waited for)."""
        proc_env = cli_env(
            AIOQ_FAULT_DIR=str(self.history_dir),
            AIOQ_FAULT_PREFIX=self.prefix,
            AIOQ_FAULT_ACK_WAIT=str(self.ack_wait),
            **(env or {}),
        )
        proc = self.procs.start(
            "worker",
            APP_PATH,
            "-s",
            url or self.url,
            "--prefix",
            self.prefix,
            "-c",
            str(concurrency),
            "--shutdown-grace",
            str(grace),
            "--heartbeat-interval",
            "0.5",
            *args,
            env=proc_env,
        )
        self.workers.append(proc)
        return proc

    async def workers_started(self, *procs: Proc, timeout: float = 30.0) -> None:
        for proc in procs or tuple(self.workers):
            await proc.wait_log(STARTED, timeout)

    def running_workers(self) -> list[Proc]:
        return [p for p in self.workers if p.returncode is None]

    async def stop_workers(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker still running and wait for them to exit."""
        for proc in self.running_workers():
            proc.send(signal.SIGTERM)
        for proc in self.running_workers():
            with contextlib.suppress(AssertionError):
                await proc.wait_exit(timeout)
            proc.reap()

    # -- faults --------------------------------------------------------------------------

    def signal_worker(self, proc: Proc, sig: signal.Signals) -> float:
        """Send `sig` to a worker and record it as an instantaneous fault."""
        moment = time.time()
        proc.send(sig)
        self.recorder.fault(sig.name.lower(), f"worker {proc.pid}", moment)
        return moment

    async def pause_worker(self, proc: Proc, seconds: float) -> None:
        """SIGSTOP a worker for `seconds`, then SIGCONT it; the window is one fault."""
        start = time.time()
        proc.send(signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            proc.send(signal.SIGCONT)
            self.recorder.fault("sigstop", f"worker {proc.pid}", start, time.time())

    async def restart_server(self, sig: signal.Signals, down: float = 0.0) -> None:
        """Stop the server with `sig`, wait `down` seconds, start it on the same store and port."""
        start = time.time()
        pid = self.server.pid
        if pid is not None:
            os.kill(pid, sig)
            await eventually(lambda: not self.server.running, 15, what="the server to exit")
        if down:
            await asyncio.sleep(down)
        await asyncio.to_thread(self.server.start, 20.0)
        self.recorder.fault(f"server {sig.name.lower()}", "nats-server", start, time.time())

    async def partition(self, seconds: float, mode: str = "reset") -> None:
        """Cut the proxied link for `seconds`, then restore it.

        Modes: ``reset``, ``blackhole`` and ``stale`` (a blackhole after which only new
        connections work).
        """
        assert self.proxy is not None
        start = time.time()
        self.proxy.cut("reset" if mode == "reset" else "blackhole")
        try:
            await asyncio.sleep(seconds)
        finally:
            self.proxy.restore(stale=mode == "stale")
            self.recorder.fault(f"partition {mode}", "worker link", start, time.time())

    # -- producer ------------------------------------------------------------------------

    async def enqueue(self, job_id: str, task: str = "work", **kwargs: Any) -> bool:
        """Enqueue one job, retrying with the same id until acknowledged or the horizon."""
        app = await self.app()
        call = app.get_task(task).with_options(job_id=job_id)
        self.recorder.invoke(job_id)
        deadline = time.monotonic() + ENQUEUE_HORIZON_S
        pause = 0.1
        while True:
            try:
                job = await call.enqueue(**kwargs)
            except Exception as e:
                self.enqueue_failures += 1
                self.recorder.fail(job_id, f"{type(e).__name__}: {e}")
                if time.monotonic() > deadline:
                    self.unknown.add(job_id)
                    return False
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            self.recorder.ack(job_id, job.duplicate)
            self.acked.add(job_id)
            return True

    async def produce(
        self,
        count: int,
        *,
        task: str = "work",
        window: int = 32,
        prefix: str = "j",
        rate: float | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Enqueue `count` jobs, `window` at a time (at most `rate` per second if given)."""
        ids = [f"{prefix}{i:06d}-{uuid.uuid4().hex[:8]}" for i in range(count)]
        queue: asyncio.Queue[str] = asyncio.Queue()
        for job_id in ids:
            queue.put_nowait(job_id)
        started = time.monotonic()
        sent = 0

        async def lane() -> None:
            nonlocal sent
            while not queue.empty():
                job_id = queue.get_nowait()
                if rate:
                    ahead = started + sent / rate - time.monotonic()
                    sent += 1
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                await self.enqueue(job_id, task, **kwargs)

        await asyncio.gather(*(lane() for _ in range(min(window, count))))
        return ids

    # -- outcome -------------------------------------------------------------------------

    def outstanding(self) -> set[str]:
        """Acknowledged jobs neither completed nor dead-lettered yet."""
        return self.acked - self.completions.refresh() - set(self.dead)

    async def read_dead(self) -> dict[str, str]:
        """Read the dead letters of the default queue into `dead` (and the history, once)."""
        app = await self.app()
        for entry in await app.dead.list("default"):
            letter = entry.letter
            key = letter.id or f"seq:{entry.seq}"
            if key not in self.dead:
                self.dead[key] = str(letter.reason)
                self.recorder.dead(key, str(letter.reason))
        return self.dead

    async def drain(self, timeout: float, *, dead_letters: bool = False) -> set[str]:
        """Wait until every acknowledged job completed (or was dead-lettered); return the rest."""
        deadline = time.monotonic() + timeout
        last_dead = 0.0
        while self.outstanding() and time.monotonic() < deadline:
            if dead_letters and time.monotonic() - last_dead > 1.0:
                with contextlib.suppress(Exception):
                    await self.read_dead()
                last_dead = time.monotonic()
            await asyncio.sleep(0.1)
        return self.outstanding()

    async def consumer_idle(self, timeout: float = 15.0) -> bool:
        """Whether the queue's consumer reaches nothing pending and nothing unacknowledged."""
        app = await self.app()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                stats = {q.name: q for q in await app.queues()}
                default = stats.get("default")
                if default is not None and not default.pending and not default.in_flight:
                    return True
            await asyncio.sleep(0.2)
        return False

    async def finish(self, expected_dead: Iterable[str] = ()) -> Report:
        """Stop the workers, record the dead letters and check the history.

        A server that exited without the scenario stopping it (another process signalled
        it, or it crashed) is reported as a problem of the run, and so is a worker that
        wrote a warning more than once a second.
        """
        problems = []
        if not self.server.running:
            problems.append(f"nats-server exited unexpectedly; see {self.server.log_file}")
        await self.stop_workers()
        with contextlib.suppress(Exception):
            await self.read_dead()
        report = check(load(self.history_dir), expected_dead)
        report.problems.extend(problems + log_problems(self.procs.started))
        return report
