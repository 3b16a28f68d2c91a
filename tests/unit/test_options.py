"""Options as values: `resolve` precedence and `WorkerOptions` (no server needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aioq import Aarq, ConfigError, Worker
from aioq.options import (
    DEFAULT_UNIQUE_TTL,
    MAX_UNIQUE_TTL,
    CallOptions,
    UniqueSpec,
    WorkerOptions,
    resolve,
)


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


def test_unique_options_are_checked_and_keyed_per_task() -> None:
    with pytest.raises(ConfigError, match="unique_ttl needs unique=True or a unique_key"):
        CallOptions(unique_ttl=5)
    with pytest.raises(ConfigError, match="at most 2592000 seconds"):
        CallOptions(unique=True, unique_ttl=MAX_UNIQUE_TTL + 1)
    with pytest.raises(ConfigError, match="unique_key must be a non-empty string"):
        CallOptions(unique_key="")
    assert UniqueSpec.of("t", CallOptions(), b"[]") is None
    spec = UniqueSpec.of("t", CallOptions(unique_key="k"), b"[]")
    assert spec is not None
    assert spec.label == "k"
    assert spec.ttl == DEFAULT_UNIQUE_TTL
    other_task = UniqueSpec.of("u", CallOptions(unique_key="k"), b"[]")
    assert other_task is not None
    assert other_task.key != spec.key
    by_arguments = UniqueSpec.of("t", CallOptions(unique=True, unique_ttl=9), b"[[1],{}]")
    assert by_arguments is not None
    assert by_arguments.label is None
    assert by_arguments.ttl == 9
    assert re.fullmatch(r"u-[0-9a-f]{40}", by_arguments.key)


def test_connection_options_are_declared_once_for_the_app_and_use_connection() -> None:
    app = Aarq("nats://a:4222,nats://b:4222", token=None, tls_ca=Path("/ca.pem"), name="api")
    settings = app.settings
    assert (settings.servers, settings.tls_ca, settings.name) == (
        ["nats://a:4222", "nats://b:4222"],
        "/ca.pem",
        "api",
    )
    assert (settings.token, settings.connect_timeout) == (None, 2.0)
    app.use_connection(connect_timeout=5.0, inbox_prefix="_INBOX_api", tls_ca=None)
    assert (app.settings.connect_timeout, app.settings.inbox_prefix) == (5.0, "_INBOX_api")
    assert app.settings.tls_ca == "/ca.pem"  # None keeps the app's own
    for bad in ({"bogus": 1}, {"replication": None}, {"domain": "x"}):
        with pytest.raises(TypeError, match=f"unexpected keyword argument '{next(iter(bad))}'"):
            Aarq(**bad)
    with pytest.raises(ConfigError, match="inbox"):
        app.use_connection(inbox_prefix="bad prefix")
