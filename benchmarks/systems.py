"""One adapter per benchmarked system: how its worker is started, how jobs are enqueued.

Each adapter runs its client inside the benchmark runner (``open``/``enqueue_*``/``close``)
and names the command lines that start its worker the way its users start it (its own
CLI, its own process). Jobs are of two kinds: ``"noop"`` and ``"sleep"`` (``await
asyncio.sleep(0.01)``); each carries its enqueue wall-clock time, and each job body calls
:func:`benchmarks.recorder.record` (see there).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from benchmarks.infra import VENV_BIN, MissingDependency, find_program

CONCURRENCY = 100


def _exe(name: str) -> str:
    path = find_program(name)
    if path is None:
        raise MissingDependency(
            f"{name!r} CLI not found; install the peers: "
            ".venv/bin/pip install -e '.[bench]' (or taskiq taskiq-nats arq saq redis)"
        )
    return path


def _import(module: str, hint: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(f"cannot import {module}: {exc}. {hint}") from exc


def _reload(module: str, hint: str) -> Any:
    """(Re)import an app module so it picks up this step's broker URL from the environment."""
    mod = sys.modules.get(module)
    if mod is None:
        return _import(module, hint)
    return importlib.reload(mod)


PEER_HINT = "Install the peers: .venv/bin/pip install taskiq taskiq-nats arq saq redis"


class System:
    """Base adapter."""

    name: ClassVar[str]
    broker: ClassVar[str]  # "nats" or "redis"
    batch_api: ClassVar[str | None] = None  # None: no batch API, the runner gathers enqueues
    stop_group: ClassVar[bool] = False  # SIGTERM the CLI's whole process group to stop it
    url: str

    def env(self) -> dict[str, str]:
        """Environment for the worker processes (and set in the runner before ``open``)."""
        return {"NATS_URL" if self.broker == "nats" else "REDIS_URL": self.url}

    def check(self) -> None:
        """Raise MissingDependency early if something is not installed."""

    def worker_commands(self, nprocs: int) -> list[list[str]]:
        raise NotImplementedError

    async def open(self, url: str) -> None:
        raise NotImplementedError

    async def enqueue_one(self, kind: str, t: float) -> None:
        raise NotImplementedError

    async def enqueue_batch(self, kind: str, ts: Sequence[float]) -> None:
        raise NotImplementedError

    async def pending(self) -> int | None:
        """Jobs the broker still holds (queued or unacked), or None if not known."""
        return None

    async def close(self) -> None:
        raise NotImplementedError


# --------------------------------------------------------------------------- ceiling


class Ceiling(System):
    """Raw nats-py: ``js.publish`` per job, ``js.publish_async`` for the batch."""

    name = "ceiling"
    broker = "nats"
    batch_api = "js.publish_async"

    def worker_commands(self, nprocs: int) -> list[list[str]]:
        cmd = [sys.executable, "-m", "benchmarks.ceiling_worker", "--url", self.url,
               "-c", str(CONCURRENCY)]  # fmt: skip
        return [cmd] * nprocs

    async def open(self, url: str) -> None:
        import nats

        from benchmarks import ceiling_worker

        self.url = url
        self.mod = ceiling_worker
        self.nc = await nats.connect(url)
        self.js = self.nc.jetstream()
        await ceiling_worker.ensure_stream(self.js)

    @staticmethod
    def _payload(kind: str, t: float) -> bytes:
        return f"{'s' if kind == 'sleep' else 'n'}:{t!r}".encode()

    async def enqueue_one(self, kind: str, t: float) -> None:
        await self.js.publish(self.mod.SUBJECT, self._payload(kind, t))

    async def enqueue_batch(self, kind: str, ts: Sequence[float]) -> None:
        subject = self.mod.SUBJECT
        futures = [await self.js.publish_async(subject, self._payload(kind, t)) for t in ts]
        await asyncio.gather(*futures)

    async def pending(self) -> int | None:
        info = await self.js.consumer_info(self.mod.STREAM, self.mod.DURABLE)
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def close(self) -> None:
        await self.nc.close()


# --------------------------------------------------------------------------- aioq


class Aioq(System):
    """aioq: ``noop.enqueue`` / ``app.enqueue_many``; drain checked by its records only."""

    name = "aioq"
    broker = "nats"
    batch_api = "app.enqueue_many"
    MODULE = "benchmarks.aioq_app"
    # asyncio's own loop, as the ceiling's; `aioq_uvloop` measures uvloop on its own row.
    LOOP = "asyncio"

    def check(self) -> None:
        _exe("aioq")

    def worker_commands(self, nprocs: int) -> list[list[str]]:
        cmd = [_exe("aioq"), "worker", f"{self.MODULE}:app", "-q", "bench",
               "-c", str(CONCURRENCY), "-s", self.url, "--log-level", "warning",
               "--loop", self.LOOP]  # fmt: skip
        return [cmd] * nprocs

    async def open(self, url: str) -> None:
        self.url = url
        os.environ["NATS_URL"] = url
        self.mod = _reload(self.MODULE, "Is the aioq package importable (pip install -e .)?")
        self.app = self.mod.app

    def _task(self, kind: str) -> Any:
        return self.mod.sleep10ms if kind == "sleep" else self.mod.noop

    async def enqueue_one(self, kind: str, t: float) -> None:
        await self._task(kind).enqueue(t)

    async def enqueue_batch(self, kind: str, ts: Sequence[float]) -> None:
        task = self._task(kind)
        await self.app.enqueue_many([task.prepare(t) for t in ts])

    async def pending(self) -> int | None:
        broker = await self.app.connect()
        return await broker.jobs.backlog("bench")

    async def close(self) -> None:
        await self.app.close()


class AioqNoResult(Aioq):
    """aioq with ``keep_result=0`` (not its default): no job records, events only."""

    name = "aioq_noresult"

    def env(self) -> dict[str, str]:
        return {**super().env(), "AIOQ_BENCH_KEEP_RESULT": "0"}

    async def open(self, url: str) -> None:
        os.environ["AIOQ_BENCH_KEEP_RESULT"] = "0"
        try:
            await super().open(url)
        finally:
            del os.environ["AIOQ_BENCH_KEEP_RESULT"]


class AioqUvloop(Aioq):
    """aioq's worker on uvloop (``--loop uvloop``; the ceiling runs on asyncio's loop)."""

    name = "aioq_uvloop"
    LOOP = "uvloop"

    def check(self) -> None:
        super().check()
        _import("uvloop", "Install it: .venv/bin/pip install -e '.[uvloop]'")


class AioqNoQueued(Aioq):
    """aioq without the "queued" record at enqueue (a measurement, not a behaviour)."""

    name = "aioq_noqueued"

    async def open(self, url: str) -> None:
        os.environ["AIOQ_BENCH_NO_QUEUED_RECORD"] = "1"
        try:
            await super().open(url)
        finally:
            del os.environ["AIOQ_BENCH_NO_QUEUED_RECORD"]


# --------------------------------------------------------------------------- taskiq


class Taskiq(System):
    """taskiq + taskiq-nats JetStream pull broker; ``task.kiq`` per job, no batch API."""

    name = "taskiq"
    broker = "nats"
    MODULE = "benchmarks.taskiq_app"
    fetch_batch = 1  # taskiq-nats' default pull_consume_batch

    def env(self) -> dict[str, str]:
        return {**super().env(), "BENCH_TASKIQ_BATCH": str(self.fetch_batch)}

    def check(self) -> None:
        _exe("taskiq")
        _import("taskiq_nats", PEER_HINT)

    def worker_commands(self, nprocs: int) -> list[list[str]]:
        return [[_exe("taskiq"), "worker", f"{self.MODULE}:broker", "--workers", str(nprocs),
                 "--max-async-tasks", str(CONCURRENCY), "--log-level", "WARNING"]]  # fmt: skip

    async def open(self, url: str) -> None:
        self.url = url
        os.environ.update(self.env())
        self.mod = _reload(self.MODULE, PEER_HINT)
        self.broker_obj = self.mod.broker
        await self.broker_obj.startup()

    async def enqueue_one(self, kind: str, t: float) -> None:
        task = self.mod.sleep10ms if kind == "sleep" else self.mod.noop
        await task.kiq(t)

    async def pending(self) -> int | None:
        info = await self.broker_obj.js.consumer_info("BENCH_TASKIQ", "bench_taskiq")
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def close(self) -> None:
        await self.broker_obj.shutdown()


class TaskiqBatch100(Taskiq):
    """taskiq-nats with ``pull_consume_batch=100`` (not its default)."""

    name = "taskiq_b100"
    fetch_batch = 100


# --------------------------------------------------------------------------- arq


class Arq(System):
    """arq: ``pool.enqueue_job`` per job, no batch API."""

    name = "arq"
    broker = "redis"
    poll_delay: float | None = None  # None: arq's default (0.5 s)

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.poll_delay is not None:
            env["BENCH_ARQ_POLL_DELAY"] = str(self.poll_delay)
        return env

    def check(self) -> None:
        _exe("arq")
        _import("arq", PEER_HINT)

    def worker_commands(self, nprocs: int) -> list[list[str]]:
        cmd = [_exe("arq"), "benchmarks.arq_app.WorkerSettings",
               "--custom-log-dict", "benchmarks.arq_app.LOG_CONFIG"]  # fmt: skip
        return [cmd] * nprocs

    async def open(self, url: str) -> None:
        from arq import create_pool
        from arq.connections import RedisSettings

        self.url = url
        self.pool = await create_pool(RedisSettings.from_dsn(url))

    async def enqueue_one(self, kind: str, t: float) -> None:
        await self.pool.enqueue_job("sleep10ms" if kind == "sleep" else "noop", t)

    async def pending(self) -> int | None:
        from arq.constants import default_queue_name, in_progress_key_prefix

        queued = int(await self.pool.zcard(default_queue_name))
        in_progress = 0
        async for _key in self.pool.scan_iter(match=in_progress_key_prefix + "*", count=1000):
            in_progress += 1
        return queued + in_progress

    async def close(self) -> None:
        await self.pool.aclose()


class ArqPoll10ms(Arq):
    """arq with ``poll_delay=0.01`` (not its default) for low latency."""

    name = "arq_poll10ms"
    poll_delay = 0.01


# --------------------------------------------------------------------------- saq


class Saq(System):
    """SAQ: ``queue.enqueue`` per job, no batch enqueue API (``map`` waits for results)."""

    name = "saq"
    broker = "redis"
    stop_group = True  # `saq --workers N` does not forward SIGTERM to its children

    def check(self) -> None:
        _exe("saq")
        _import("saq", PEER_HINT)

    def worker_commands(self, nprocs: int) -> list[list[str]]:
        return [[_exe("saq"), "benchmarks.saq_app.settings", "--workers", str(nprocs)]]

    async def open(self, url: str) -> None:
        from saq import Queue

        from benchmarks import saq_app

        self.url = url
        self.queue = Queue.from_url(url, name=saq_app.QUEUE_NAME)
        await self.queue.connect()

    async def enqueue_one(self, kind: str, t: float) -> None:
        await self.queue.enqueue("sleep10ms" if kind == "sleep" else "noop", t=t)

    async def pending(self) -> int | None:
        return int(await self.queue.count("incomplete"))

    async def close(self) -> None:
        await self.queue.disconnect()


SYSTEMS: dict[str, type[System]] = {
    cls.name: cls
    for cls in (
        Ceiling,
        Aioq,
        AioqUvloop,
        AioqNoResult,
        AioqNoQueued,
        Taskiq,
        TaskiqBatch100,
        Arq,
        ArqPoll10ms,
        Saq,
    )
}
DEFAULT_SYSTEMS = ["ceiling", "aioq", "aioq_uvloop", "aioq_noresult", "taskiq", "arq", "saq"]

__all__ = ["DEFAULT_SYSTEMS", "SYSTEMS", "VENV_BIN", "System"]
