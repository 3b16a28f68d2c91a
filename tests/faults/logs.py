"""Checks on the workers' logs: no warning repeated within a second, each outage said once."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from tests.procs import Proc

_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ (WARNING|ERROR|CRITICAL)(.*)$")
_MASKS = re.compile(r"[0-9a-f]{6,}|\d+(\.\d+)?")


def repeated_log_lines(text: str, per_second: int = 1) -> list[str]:
    """Warnings and errors (ids, numbers masked) written more than `per_second` times a second.

    Per-job lines (``aioq.worker: job <id> ...``) are one per job outcome and are not counted.
    """
    seen: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        match = _STAMP.match(line)
        if match and not match[3].lstrip().startswith("aioq.worker: job "):
            seen[(match[1], match[2] + _MASKS.sub("N", match[3]))] += 1
    return sorted({message for (_, message), n in seen.items() if n > per_second})


def log_problems(procs: Iterable[Proc]) -> list[str]:
    """Lines any of `procs` repeated within a second."""
    return [
        f"worker {proc.pid} repeated within a second: {message[:160]}"
        for proc in procs
        for message in repeated_log_lines(proc.log())
    ]


def outages_said(text: str) -> tuple[int, int]:
    """How often a worker said its connection was lost, and that it came back."""
    return text.count("nats: disconnected"), text.count("nats: reconnected")


def outage_problems(procs: Iterable[Proc], outages: int) -> list[str]:
    """Workers that did not say each connection outage once, and its end once."""
    found = []
    for proc in procs:
        lost, back = outages_said(proc.log())
        if lost > outages or back != lost:
            found.append(
                f"worker {proc.pid} said 'disconnected' {lost}x and 'reconnected' {back}x "
                f"over {outages} outage(s)"
            )
    return found
