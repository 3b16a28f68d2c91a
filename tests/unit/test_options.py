"""Options as values: `resolve` precedence and `WorkerOptions` (no server needed)."""

from __future__ import annotations

import pytest

from aioq import Aarq, ConfigError, Worker
from aioq.options import WorkerOptions, resolve


def test_resolve_takes_the_call_then_the_task_then_the_queue_then_the_app() -> None:
    assert resolve(1, 2, 3, 4) == 1
    assert resolve(None, 2, 3, 4) == 2
    assert resolve(None, None, 3, 4) == 3
    assert resolve(None, None, None, 4) == 4
    assert resolve(None, None) is None
    # 0 and other falsy settings are given settings, not missing ones.
    assert resolve(0, 5) == 0
    assert resolve(None, 0.0) == 0.0


def test_worker_takes_its_settings_from_options_with_keyword_overrides() -> None:
    app = Aarq("nats://127.0.0.1:1", prefix="opts")
    base = WorkerOptions(queues=("a", "b"), concurrency=4, shutdown_grace=7)
    worker = Worker(app, options=base, concurrency=2)
    assert worker.queues == ["a", "b"]
    assert worker.concurrency == 2
    assert worker.shutdown_grace == 7.0
    # Today's keyword and positional forms keep working.
    assert Worker(app, ["x"], 3).queues == ["x"]
    assert Worker(app, queues="y", concurrency=5).concurrency == 5
    assert Worker(app).queues == list(WorkerOptions().queues)


def test_worker_options_reject_bad_values_and_unknown_names() -> None:
    with pytest.raises(ConfigError, match="concurrency must be an integer >= 1"):
        WorkerOptions(concurrency=0)
    with pytest.raises(ConfigError, match="at least one queue"):
        WorkerOptions(queues=())
    with pytest.raises(ConfigError, match="unknown worker option concurency"):
        WorkerOptions().replace(concurency=3)
    with pytest.raises(ConfigError, match="heartbeat_interval must be > 0"):
        Worker(Aarq("nats://127.0.0.1:1", prefix="opts"), heartbeat_interval=0)


def test_the_test_preset_is_the_defaults_with_test_friendly_changes() -> None:
    preset = WorkerOptions.for_tests(concurrency=3)
    assert preset.handle_signals is False
    assert preset.concurrency == 3
    assert preset.queues == WorkerOptions().queues
