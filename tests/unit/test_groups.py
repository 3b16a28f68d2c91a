"""Group names and the app's group limits: a named limit, the default, and none."""

from __future__ import annotations

import pytest

from aioq.errors import ConfigError
from aioq.groups import GroupLimits, validate_group


@pytest.mark.parametrize("name", ["tenant-42", "key_AbC=", "api.example.com", "a" * 128])
def test_valid_group_names(name: str) -> None:
    assert validate_group(name) == name


@pytest.mark.parametrize("name", ["", "a b", ".a", "a.", "a..b", "a*", "t>", "a" * 129, 7])
def test_invalid_group_names(name: object) -> None:
    with pytest.raises(ConfigError, match="invalid group"):
        validate_group(name)  # type: ignore[arg-type]


def test_a_named_limit_replaces_the_default_and_no_limit_costs_nothing() -> None:
    limits = GroupLimits()
    assert not limits
    assert limits.of("any") is None
    limits.set("big", rate_limit=None, rate_interval=1.0, max_running=9, recheck=0.5)
    assert limits
    assert limits.of("other") is None
    default = limits.set(None, rate_limit=5, rate_interval=2.0, max_running=None, recheck=1.0)
    assert limits.of("other") is default
    big = limits.of("big")
    assert big is not None
    assert (big.max_running, big.rate_limit, big.recheck) == (9, None, 0.5)
    # A limit that limits nothing leaves its group free.
    limits.set("free", rate_limit=None, rate_interval=1.0, max_running=None, recheck=1.0)
    assert limits.of("free") is None
