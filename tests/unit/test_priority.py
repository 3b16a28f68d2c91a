"""Priority levels: validation, the share rule, the subjects and the per-level counts."""

from __future__ import annotations

import pytest

from aioq.backend.inspection import QueueStats
from aioq.errors import ConfigError
from aioq.inspection import by_level
from aioq.naming import Names
from aioq.priority import Shares, priority_of, validate_priority


@pytest.mark.parametrize("value", [-1, 10, 2.0, True, "5", None])
def test_a_level_outside_0_to_9_is_one_clear_error(value: object) -> None:
    with pytest.raises(ConfigError, match=r"from 0 \(lowest\) to 9 \(highest\), default 5; got"):
        validate_priority(value)
    assert validate_priority(0) == 0
    assert validate_priority(9) == 9


def test_the_level_of_a_job_message() -> None:
    assert priority_of(b'{"task": "t"}') == 5
    assert priority_of(b'{"task": "t", "priority": 9}') == 9
    assert priority_of(b'{"task": "t", "kwargs": {"priority": 1}}') == 5
    assert priority_of(b'{"task": "t", "priority": 12}') == 5
    assert priority_of(b'not json, but "priority"') == 5


def _starts(shares: Shares[int], levels: dict[int, int], n: int) -> list[int]:
    order: list[int] = []
    for _ in range(n):
        plan = {k: v for k, v in shares.plan(levels, 1).items() if v}
        shares.took(levels, plan)
        order.extend(plan)
    return order


def test_each_level_gets_two_to_the_level_of_the_starts() -> None:
    order = _starts(Shares(), {9: 9, 7: 7}, 50)
    assert order.count(7) == 10
    assert "".join(map(str, order[:10])) == "9799997999"
    order = _starts(Shares(), {9: 9, 5: 5, 0: 0}, 545)
    # In every 545 starts: 2 ** 9, 2 ** 5 and 2 ** 0.
    assert (order.count(9), order.count(5), order.count(0)) == (512, 32, 1)


def test_a_level_back_from_idle_gets_no_saved_credit() -> None:
    shares: Shares[int] = Shares()
    _starts(shares, {9: 9}, 100)
    order = _starts(shares, {9: 9, 8: 8}, 30)
    assert order.count(8) == 10  # its share from now on (1 in 3), not a burst


def test_a_plan_splits_a_batch() -> None:
    assert Shares().plan({9: 9, 5: 5}, 17) == {9: 16, 5: 1}


def test_level_subjects_and_consumers() -> None:
    names = Names("shop")
    assert names.publish_subject("email", 5) == "shop.jobs.email"
    assert names.publish_subject("email", 9) == "shop.jobs.email.p.9"
    assert names.level_of("shop.jobs.email.p.0", "email") == 0
    assert names.level_of("shop.jobs.email.p.10", "email") is None
    assert names.level_of("shop.jobs.email.x", "email") is None
    assert names.is_job_subject("shop.jobs.email.p.9", "email")
    assert not names.is_job_subject("shop.jobs.email.q.9", "email")
    assert names.consumer("email", 9) == "email@p9"
    assert names.level_consumer("email@p9") == ("email", 9)
    assert names.level_consumer("email") is None
    assert names.level_consumer("@scheduler") is None


def test_jobs_per_level_for_the_cli_and_the_dashboard() -> None:
    assert by_level(QueueStats(name="q", pending=7)) == ""
    stats = QueueStats(name="q", pending=120, in_flight=6, levels={9: 3, 0: 40})
    assert by_level(stats) == "p9=3 p5=83 p0=40"
