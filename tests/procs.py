"""Real ``aioq`` processes for the process and CLI tests: start, watch, signal, always reap."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import nats

from aioq.naming import Names

from .helpers import eventually

ROOT = Path(__file__).resolve().parent.parent
APP_PATH = "tests.apps.proc_app:app"


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI process: no inherited NATS_URL, wide plain help output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOQ_TEST_", "NATS_URL"))}
    env.update(PYTHONUNBUFFERED="1", COLUMNS="200", NO_COLOR="1", TERM="dumb")
    env.update(extra)
    return env


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 30.0, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m aioq ARGS`` to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "aioq", *args],
        cwd=cwd,
        env=dict(env) if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Proc:
    """One ``python -m aioq ...`` process whose stdout and stderr go to a file."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], output: Path) -> None:
        self.args = list(args)
        self.output = output
        with output.open("wb") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "aioq", *args],
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def log(self) -> str:
        """Everything the process printed so far."""
        return self.output.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)

    async def wait_log(self, text: str, timeout: float = 15.0) -> None:
        """Wait until `text` appears in the output; fail early if the process exits."""
        await poll(
            lambda: text in self.log() or self.popen.poll() is not None,
            timeout,
            f"{text!r} in the output of {self.args}",
            self,
        )
        if text not in self.log():
            raise AssertionError(
                f"process exited with {self.popen.returncode} before printing {text!r}:\n"
                + self.log()
            )

    async def wait_exit(self, timeout: float = 15.0) -> int:
        """Wait for the process to exit and return its exit code."""
        await poll(lambda: self.popen.poll() is not None, timeout, "process exit", self)
        code = self.popen.wait()
        return code

    def reap(self) -> None:
        """Kill the process if it still runs, and collect it."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=10)


class Procs:
    """Starts processes for one test and reaps every one of them at teardown."""

    def __init__(self, workdir: Path, base_env: Mapping[str, str]) -> None:
        self.workdir = workdir
        self.base_env = dict(base_env)
        self.started: list[Proc] = []

    def start(self, *args: str, env: Mapping[str, str] | None = None) -> Proc:
        output = self.workdir / f"proc-{len(self.started)}.log"
        proc = Proc(args, {**self.base_env, **(env or {})}, output)
        self.started.append(proc)
        return proc

    def reap_all(self) -> None:
        for proc in self.started:
            proc.reap()


async def poll(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    proc: Proc | None = None,
    interval: float = 0.05,
) -> None:
    """`eventually`, failing with `what` and the output of `proc`."""

    def output() -> str:
        return f"--- output of {proc.args}:\n{proc.log()}" if proc else ""

    await eventually(condition, timeout, interval, what, output)


def read_events(path: Path) -> list[dict[str, Any]]:
    """The JSON lines the tasks of ``tests/apps/proc_app.py`` appended to `path`."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]  # a line being written is read next time
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


async def delete_prefix(url: str, names: Names) -> None:
    """Delete the streams and the workers bucket of one test prefix."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        buckets = (names.workers_bucket, names.schedules_bucket, names.limits_bucket)
        buckets += (names.unique_bucket, names.waiting_bucket)
        for stream in (names.jobs_stream, names.dead_stream, *(f"KV_{b}" for b in buckets)):
            with contextlib.suppress(Exception):
                await js.delete_stream(stream)
    finally:
        await nc.close()
