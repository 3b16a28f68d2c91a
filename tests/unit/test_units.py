"""Pure logic: backoff, names, slots, Retry; no server involved."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from aioq import Backoff, ConfigError, Retry
from aioq.backoff import resolve_backoff
from aioq.naming import Names
from aioq.worker.slots import Slots


def test_default_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    backoff = Backoff(base=1.0, factor=2.0, cap=10.0, jitter=0.2)
    for attempt, expected in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0)]:
        delays = [backoff(attempt) for _ in range(200)]
        assert min(delays) >= expected * 0.8
        assert max(delays) <= expected * 1.2
        assert len(set(delays)) > 1  # jittered
    assert all(backoff(50) <= 10.0 for _ in range(100))
    assert Backoff(jitter=0)(3) == 4.0


def test_backoff_forms() -> None:
    assert resolve_backoff(0.5)(7) == 0.5
    assert resolve_backoff(timedelta(seconds=2))(1) == 2.0
    listed = resolve_backoff([1, 5, 30])
    assert [listed(a) for a in (1, 2, 3, 4, 9)] == [1, 5, 30, 30, 30]
    assert resolve_backoff(lambda attempt: attempt * 10.0)(3) == 30.0
    for bad in (-1, [], [1, -2], "fast"):
        with pytest.raises(ConfigError):
            resolve_backoff(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Backoff(factor=0.5)


def test_retry_delay() -> None:
    assert Retry().delay is None
    assert Retry(delay=timedelta(minutes=1)).delay == 60.0
    with pytest.raises(ConfigError):
        Retry(delay=-1)


def test_names_follow_the_prefix() -> None:
    names = Names("my-app")
    assert names.jobs_stream == "MY_APP_JOBS"
    assert names.dead_stream == "MY_APP_DEAD"
    assert names.workers_bucket == "my-app-workers"
    assert names.job_subject("email") == "my-app.jobs.email"
    assert names.is_job_subject("my-app.jobs.email", "email")
    assert names.is_job_subject("my-app.jobs.email.j-1", "email")  # a foreign client's
    assert not names.is_job_subject("my-app.jobs.emails", "email")
    assert not names.is_job_subject("my-app.jobs.email.a.b", "email")
    assert names.job_filters("email") == ["my-app.jobs.email", "my-app.jobs.email.*"]
    assert names.dead_subject("email", "j-1") == "my-app.dead.email.j-1"
    assert names.dead_subject("email") == "my-app.dead.email.*"
    assert names.results_bucket == "my-app-results"
    assert names.event_subject("email", "started") == "my-app.events.email.started"
    assert Names().job_subject("default") == "aioq.jobs.default"


async def test_slots_hand_out_batches_and_wait_when_full() -> None:
    slots = Slots(5)
    assert await slots.acquire(3) == 3
    assert await slots.acquire(10) == 2
    waiter = asyncio.create_task(slots.acquire(4))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    slots.release(2)
    assert await asyncio.wait_for(waiter, 1) == 2
    slots.resize(10)
    assert slots.free == 5
    slots.resize(3)
    assert slots.free == 0
    with pytest.raises(ConfigError):
        Slots(0)


async def _t_plain(ctx, a, b): ...  # type: ignore[no-untyped-def]
async def _t_defaults(ctx, a, b=1, *, c=2): ...  # type: ignore[no-untyped-def]
async def _t_star(ctx, a, *rest, **extra): ...  # type: ignore[no-untyped-def]
async def _t_kwonly(ctx, a, *, key): ...  # type: ignore[no-untyped-def]
async def _t_posonly(ctx, a, /, b=0): ...  # type: ignore[no-untyped-def]


@pytest.mark.parametrize("fn", [_t_plain, _t_defaults, _t_star, _t_kwonly, _t_posonly])
def test_argument_check_agrees_with_signature_bind(fn) -> None:  # type: ignore[no-untyped-def]
    """The positional fast path accepts exactly what `inspect.Signature.bind` accepts."""
    import inspect

    from aioq import Aarq

    app = Aarq("nats://127.0.0.1:1", prefix="units")
    task = app.task(name=fn.__name__)(fn)
    calls: list[tuple[tuple[object, ...], dict[str, object]]] = [
        ((), {}), ((1,), {}), ((1, 2), {}), ((1, 2, 3), {}), ((1, 2, 3, 4), {}),
        ((1,), {"b": 2}), ((1,), {"key": 3}), ((1,), {"ctx": 0}), ((), {"a": 1, "b": 2}),
    ]  # fmt: skip
    signature = inspect.signature(fn)
    for args, kwargs in calls:
        try:
            signature.bind(None, *args, **kwargs)
            expected = True
        except TypeError:
            expected = False
        try:
            task.check_arguments(args, kwargs)
            accepted = True
        except TypeError:
            accepted = False
        assert accepted == expected, (fn.__name__, args, kwargs)
