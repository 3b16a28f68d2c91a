"""The README's first command: a local NATS, a worker, some jobs, and everything stopped.

Run it from the repository root: ``.venv/bin/python examples/demo.py``.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aioq.embedded import EmbeddedNats  # noqa: E402
from examples.tasks import add, app, send_email  # noqa: E402

JOBS = 10


async def enqueue_jobs(url: str) -> None:
    app.use_servers(url)
    async with app:
        for i in range(JOBS // 2):
            await add.enqueue(i, i)
        jobs = await app.enqueue_many(
            send_email.prepare(f"user{i}@example.com", f"hello #{i}") for i in range(JOBS // 2)
        )
    print(f"demo: enqueued {JOBS} jobs (last id {jobs[-1].id})", flush=True)


def main() -> int:
    with EmbeddedNats() as server:
        print(f"demo: nats-server running at {server.url}", flush=True)
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aioq",
                "worker",
                "examples.tasks:app",
                "-q",
                "default",
                "-q",
                "email",
                "-c",
                "20",
                "-s",
                server.url,
            ],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert worker.stderr is not None
        # A thread reads the worker's log, so the wait for the jobs below has a real deadline
        # even if the worker stops printing.
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_read_lines, args=(worker.stderr, lines), daemon=True)
        reader.start()
        done = 0
        try:
            asyncio.run(enqueue_jobs(server.url))
            deadline = time.monotonic() + 30
            while done < JOBS:
                try:
                    line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if line is None:  # the worker exited
                    break
                print("worker: " + line, end="", flush=True)
                done += " succeeded" in line
            print(f"demo: {done} of {JOBS} jobs processed", flush=True)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            reader.join(timeout=5)
            while not lines.empty():
                line = lines.get()
                if line is not None:
                    print("worker: " + line, end="", flush=True)
        print(f"demo: worker exited with {worker.returncode}; nats-server stopped", flush=True)
        return 0 if done == JOBS and worker.returncode == 0 else 1


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


if __name__ == "__main__":
    sys.exit(main())
