"""Per-job timing records, written without per-job I/O.

Every benchmark job (in every system) calls :func:`record` once when it finishes, with
the enqueue wall-clock time it carried in its payload and the wall-clock time at which
its body started. The record ``(t_enqueue, t_start, t_end)`` is appended to an in-memory
``array('d')``; a timer on the worker's own event loop appends the new records to
``$BENCH_RECORD_DIR/rec-<pid>.bin`` every 50 ms (and once more at interpreter exit). The
hot path is therefore one array append (the buffer is emptied at each flush, so it does
not grow with the job count and does not distort the RSS figures); the only I/O is one
small ``write`` per 50 ms per worker process, the same for every system.

The benchmark runner reads the files while the worker runs: ``size // 24`` is the number
of finished jobs, so completion detection needs nothing from the broker, and the file name
says which process ran the jobs (the one whose RSS and CPU are measured).

Without ``BENCH_RECORD_DIR`` in the environment, :func:`record` does nothing.
"""

from __future__ import annotations

import array
import asyncio
import atexit
import os
import time

FLUSH_INTERVAL = 0.05
RECORD_SIZE = 24  # three doubles

_dir = os.environ.get("BENCH_RECORD_DIR") or None
_buf = array.array("d")
_fd: int | None = None
_timer_loop: asyncio.AbstractEventLoop | None = None
_now = time.time


def _open() -> int:
    global _fd
    if _fd is None:
        assert _dir is not None
        path = os.path.join(_dir, f"rec-{os.getpid()}.bin")
        _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return _fd


def flush() -> None:
    """Append the records not yet written to this process's record file."""
    if _dir is None:
        return
    end = len(_buf)
    if end == 0:
        return
    data = _buf.tobytes()
    # Drop what is written so the buffer never grows with the job count (RSS is measured).
    del _buf[:end]
    fd = _open()
    view = memoryview(data)
    while view:  # regular-file writes are complete in practice; loop to be safe
        n = os.write(fd, view)
        view = view[n:]


def _tick() -> None:
    global _timer_loop
    try:
        flush()
    finally:
        loop = _timer_loop
        if loop is not None and not loop.is_closed():
            loop.call_later(FLUSH_INTERVAL, _tick)


def _ensure_timer() -> None:
    global _timer_loop
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # called outside a loop: flush synchronously
        flush()
        return
    if loop is not _timer_loop:
        _timer_loop = loop
        loop.call_later(FLUSH_INTERVAL, _tick)


def record(t_enqueue: float, t_start: float) -> None:
    """Record one finished job: its enqueue time, its start time and now (its end)."""
    if _dir is None:
        return
    _buf.extend((t_enqueue, t_start, _now()))
    if _timer_loop is None:
        _ensure_timer()


atexit.register(flush)
