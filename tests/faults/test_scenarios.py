"""The CI subset of the fault scenarios: real processes on loopback, small sizes.

The full sizes, and the scenarios not listed here, run with ``python -m tests.faults``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from .checker import check
from .harness import Lab
from .history import exec_log, load
from .logs import repeated_log_lines
from .scenarios import SCENARIOS, Outcome, Size

ACK_WAIT_S = 1.5

CI_SUBSET = [
    "worker-sigkill-loop",
    "worker-sigstop",
    "worker-sigterm-grace",
    "worker-sigterm-no-grace",
    "server-sigkill",
    "server-down-long",
    "hostile",
    "partition-reset",
    "partition-stale",
    "poison",
    "delayed-restart",
    "slow-consumer",
    "consumer-deleted",
]


async def run(name: str, tmp_path: Path) -> Outcome:
    async with Lab(tmp_path, name, ack_wait=ACK_WAIT_S) as lab:
        return await SCENARIOS[name](lab, Size(full=False))


@pytest.mark.parametrize("name", CI_SUBSET)
async def test_scenario(name: str, tmp_path: Path) -> None:
    outcome = await run(name, tmp_path)
    assert outcome.ok, outcome.summary()


async def test_negative_controls_turn_a_real_green_history_red(tmp_path: Path) -> None:
    """A green run means something only if the checker flags loss in that same history."""
    async with Lab(tmp_path, "controls", ack_wait=ACK_WAIT_S) as lab:
        outcome = await SCENARIOS["worker-sigkill-loop"](lab, Size(full=False))
        assert outcome.ok, outcome.summary()
        # A job acknowledged while no worker runs never completes.
        assert await lab.enqueue("never-run")
        lab.recorder.ack("phantom", duplicate=False)  # acknowledged, never stored
        directory = lab.history_dir
    history = load(directory)
    runs = Counter(e.job for e in history.completions)
    dropped = next(e for e in history.completions if runs[e.job] == 1)
    log = exec_log(directory, dropped.pid)
    kept = [line for line in log.read_text().splitlines(keepends=True) if dropped.job not in line]
    log.write_text("".join(kept))
    report = check(load(directory))
    assert set(report.lost) == {"never-run", "phantom", dropped.job}
    assert not report.ok


def test_repeated_log_lines_are_found() -> None:
    text = (
        "2026-01-01 10:00:00,100 WARNING aioq.nats: nats: reset by peer 4\n"
        "2026-01-01 10:00:00,900 WARNING aioq.nats: nats: reset by peer 5\n"
        "2026-01-01 10:00:01,900 WARNING aioq.nats: nats: refused\n"
        "2026-01-01 10:00:02,900 WARNING aioq.nats: nats: refused\n"
        "2026-01-01 10:00:02,901 INFO    aioq.worker: done\n"
        "2026-01-01 10:00:02,902 INFO    aioq.worker: done\n"
        "2026-01-01 10:00:02,903 WARNING aioq.worker: job a1b2c3d4e5 dead-lettered\n"
        "2026-01-01 10:00:02,904 WARNING aioq.worker: job f1b2c3d4e5 dead-lettered\n"
    )
    assert repeated_log_lines(text) == ["WARNING aioq.nats: nats: reset by peer N"]
