"""The allow lists per role, and the parsing of the server's violation errors (no server)."""

from __future__ import annotations

import pytest

from aioq import Aarq
from aioq._nats.denials import parse_violation
from aioq.errors import ConfigError
from aioq.permissions import Role, describe_subject, permissions


def test_roles_are_scoped_to_their_queues_and_prefix() -> None:
    worker = permissions("worker", ["email"], prefix="shop")
    assert "$JS.API.CONSUMER.MSG.NEXT.SHOP_JOBS.email" in worker.publish
    assert not any("billing" in s for s in worker.publish)
    assert "shop.jobs.email" not in worker.publish  # a worker does not enqueue
    producer = permissions(Role.PRODUCER, ["email", "billing"], prefix="shop")
    assert {"shop.jobs.email", "shop.jobs.billing"} <= set(producer.publish)
    assert not any("MSG.NEXT" in s for s in producer.publish)
    dashboard = permissions("dashboard", prefix="shop")
    assert not any("PURGE" in s or "DELETE" in s or s.startswith("$KV.") for s in dashboard.publish)
    assert "shop.events.*.*" in dashboard.subscribe
    assert "$JS.API.>" in permissions("admin", prefix="shop").publish


def test_bad_roles_and_queues_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown role 'boss'"):
        permissions("boss")
    with pytest.raises(ConfigError, match="needs its queues"):
        permissions("producer")
    with pytest.raises(ConfigError, match="invalid queue name"):
        permissions("worker", ["a.b"])


def test_block_renders_allow_lists() -> None:
    block = permissions("scheduler").server_block(indent=2)
    assert block.startswith("  permissions = {\n    publish = {\n      allow = [\n")
    assert '"aioq.sched.>"' in block


def test_violation_parsing_and_descriptions() -> None:
    text = 'Error: nats: permissions violation for publish to "$js.api.stream.purge.x"'
    assert parse_violation(text) == ("publish", "$js.api.stream.purge.x")
    assert parse_violation("nats: slow consumer") is None
    assert describe_subject("$JS.API.STREAM.PURGE.AIOQ_DEAD") == "purge a stream (AIOQ_DEAD)"
    assert describe_subject("aioq.jobs.email") == "aioq.jobs.email"


def test_inbox_prefix() -> None:
    assert permissions("dashboard", inbox_prefix="_INBOX_dash").subscribe[0] == "_INBOX_dash.>"
    with pytest.raises(ConfigError, match="invalid inbox prefix"):
        permissions("dashboard", inbox_prefix="_INBOX.>")
    with pytest.raises(ConfigError, match="invalid inbox prefix"):
        Aarq(inbox_prefix="a b")
    assert "inbox_prefix='_I'" in repr(Aarq(inbox_prefix="_I").settings)
