"""The history of a fault scenario: append-only JSON-lines logs, one record per line.

Every process writes its own file in the scenario's history directory with one unbuffered
``os.write`` on an ``O_APPEND`` descriptor, so a record is on disk before the next statement
runs, even if the process is killed right after:

- ``producer.jsonl``: ``invoke`` (an enqueue is attempted), ``ack`` (the server acknowledged
  it), ``fail`` (this attempt raised; the producer retries with the same job id);
- ``exec-<pid>.jsonl``: ``start`` and ``done`` of each task execution, with the job id, the
  attempt (delivery count) and the pid; ``done`` is written before the worker acknowledges;
- ``faults.jsonl``: each injected fault with its time window (``start``, ``end``);
- ``dead.jsonl``: the dead letters found at the end, with their reason.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRODUCER_LOG = "producer.jsonl"
FAULTS_LOG = "faults.jsonl"
DEAD_LOG = "dead.jsonl"
EXEC_GLOB = "exec-*.jsonl"


def append(path: Path | str, record: dict[str, Any]) -> None:
    """Append one JSON line to `path` with a single unbuffered write."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
    finally:
        os.close(fd)


def exec_log(directory: Path | str, pid: int | None = None) -> Path:
    """The execution log of process `pid` (this one by default) in `directory`."""
    return Path(directory) / f"exec-{pid if pid is not None else os.getpid()}.jsonl"


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete records of one log (a line cut short by a kill is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclass(frozen=True, slots=True)
class Execution:
    """One completed execution of a job (a ``done`` record)."""

    job: str
    attempt: int
    pid: int
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault; an instantaneous one has ``start == end``."""

    kind: str
    target: str
    start: float
    end: float


@dataclass(slots=True)
class History:
    """Everything a scenario recorded, as the checker reads it."""

    attempted: set[str] = field(default_factory=set)
    acks: dict[str, float] = field(default_factory=dict)
    starts: list[dict[str, Any]] = field(default_factory=list)
    completions: list[Execution] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    dead: dict[str, str] = field(default_factory=dict)


def load(directory: Path | str) -> History:
    """Read every log of a scenario's history directory."""
    directory = Path(directory)
    history = History()
    for record in read_lines(directory / PRODUCER_LOG):
        job = str(record.get("job"))
        if record.get("kind") == "invoke":
            history.attempted.add(job)
        elif record.get("kind") == "ack":
            history.acks.setdefault(job, float(record["t"]))
    for path in sorted(directory.glob(EXEC_GLOB)):
        for record in read_lines(path):
            if record.get("kind") == "start":
                history.starts.append(record)
            elif record.get("kind") == "done":
                history.completions.append(
                    Execution(
                        job=str(record["job"]),
                        attempt=int(record["attempt"]),
                        pid=int(record["pid"]),
                        start=float(record["start"]),
                        end=float(record["t"]),
                    )
                )
    for record in read_lines(directory / FAULTS_LOG):
        history.faults.append(
            Fault(
                kind=str(record["fault"]),
                target=str(record.get("target", "")),
                start=float(record["start"]),
                end=float(record["end"]),
            )
        )
    for record in read_lines(directory / DEAD_LOG):
        history.dead[str(record["job"])] = str(record.get("reason", ""))
    return history


class Recorder:
    """Writes the producer's and the harness's records of one scenario."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def invoke(self, job: str) -> None:
        append(self.directory / PRODUCER_LOG, {"kind": "invoke", "job": job, "t": time.time()})

    def ack(self, job: str, duplicate: bool) -> None:
        record = {"kind": "ack", "job": job, "t": time.time(), "duplicate": duplicate}
        append(self.directory / PRODUCER_LOG, record)

    def fail(self, job: str, error: str) -> None:
        record = {"kind": "fail", "job": job, "t": time.time(), "error": error[:300]}
        append(self.directory / PRODUCER_LOG, record)

    def fault(self, kind: str, target: str, start: float, end: float | None = None) -> None:
        record = {"fault": kind, "target": target, "start": start, "end": end or start}
        append(self.directory / FAULTS_LOG, record)

    def dead(self, job: str, reason: str) -> None:
        append(self.directory / DEAD_LOG, {"job": job, "reason": reason})
