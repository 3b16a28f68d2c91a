"""Pure scheduling and flow-control logic: schedules, tick ids, repeatable definitions, the
rate-limit token bucket (fake clock), pause times and the --until parser; no server."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from aioq import Aarq, ConfigError, Context, Missed
from aioq._nats.run_at import read_run_at
from aioq.cli.queue import parse_until
from aioq.cron import CronSchedule, EverySchedule, tick_id, ticks_between
from aioq.options import MAX_RUN_AT, CallOptions
from aioq.publishing import pause_end
from aioq.ratelimit import TokenBucket, free_tokens, next_token_in, prune

PARIS = ZoneInfo("Europe/Paris")


def ts(text: str, tz: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def local(t: float, tz: ZoneInfo = PARIS) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


# -- schedules ---------------------------------------------------------------------------


def test_every_ticks_on_multiples_of_the_interval() -> None:
    five = EverySchedule(timedelta(minutes=5))
    assert five.seconds == 300
    assert five.next_after(1_000) == 1_200
    assert five.next_after(1_200) == 1_500  # strictly after
    assert five.latest(1_200) == 1_200
    assert five.latest(1_199.5) == 900
    assert five.before(1_200) == 900
    assert five.before(1_200.5) == 1_200
    assert EverySchedule(2).describe() == "every 2s"
    for bad in (0, 0.5, 1.5, -3, "5", True, timedelta(milliseconds=1500)):
        with pytest.raises(ConfigError, match="every"):
            EverySchedule(bad)  # type: ignore[arg-type]


def test_cron_in_a_time_zone() -> None:
    nine = CronSchedule("0 9 * * MON-FRI", "Europe/Paris")
    friday_noon = ts("2026-01-16T12:00:00")  # a Friday
    assert local(nine.next_after(friday_noon)) == "2026-01-19T09:00:00+01:00"  # Monday
    assert local(nine.latest(friday_noon) or 0) == "2026-01-16T09:00:00+01:00"
    assert nine.latest(ts("2026-01-16T09:00:00")) == ts("2026-01-16T09:00:00")
    assert nine.before(ts("2026-01-16T09:00:00")) == ts("2026-01-15T09:00:00")
    # Summer time: the same wall time is another UTC instant.
    assert local(nine.next_after(ts("2026-07-01T10:00:00")), UTC) == "2026-07-02T07:00:00+00:00"
    assert nine.describe() == "cron '0 9 * * MON-FRI' Europe/Paris"
    utc = CronSchedule("*/15 * * * *")
    assert utc.tz_name == "UTC"
    assert utc.next_after(ts("2026-01-01T00:07:00", UTC)) == ts("2026-01-01T00:15:00", UTC)
    seconds = CronSchedule("* * * * * */10")  # croniter: a sixth field is seconds
    assert seconds.next_after(ts("2026-01-01T00:00:01", UTC)) == ts("2026-01-01T00:00:10", UTC)
    assert CronSchedule("@hourly").next_after(ts("2026-01-01T00:30:00", UTC)) == ts(
        "2026-01-01T01:00:00", UTC
    )


def test_cron_across_daylight_saving_changes() -> None:
    # 2026-03-29 02:00 does not exist in Paris: the 02:30 tick fires at 03:00.
    daily = CronSchedule("30 2 * * *", "Europe/Paris")
    assert local(daily.next_after(ts("2026-03-28T12:00:00"))) == "2026-03-29T03:00:00+02:00"
    # 2026-10-25 02:30 happens twice: a fixed-hour job fires once, at the first one.
    first = daily.next_after(ts("2026-10-24T12:00:00"))
    assert local(first) == "2026-10-25T02:30:00+02:00"
    assert local(daily.next_after(first)) == "2026-10-26T02:30:00+01:00"
    assert daily.before(ts("2026-10-25T04:00:00")) == first
    # A job on every hour follows real time through the repeated hour.
    half_hourly = CronSchedule("*/30 * * * *", "Europe/Paris")
    ticks = [half_hourly.next_after(ts("2026-10-25T01:50:00"))]
    for _ in range(4):
        ticks.append(half_hourly.next_after(ticks[-1]))
    assert [b - a for a, b in itertools.pairwise(ticks)] == [1800.0] * 4


@pytest.mark.parametrize(
    ("expression", "tz", "match"),
    [
        ("61 * * * *", None, "invalid cron expression"),
        ("* * *", None, "invalid cron expression"),
        ("every monday", None, "invalid cron expression"),
        ("", None, "cron must be"),
        ("0 9 * * *", "Europe/Pariss", "unknown time zone"),
        ("0 9 * * *", "", "tz must be"),
    ],
)
def test_invalid_cron_or_zone_fails_at_definition(
    expression: str, tz: str | None, match: str
) -> None:
    app = Aarq(prefix="units")

    @app.task
    async def report(ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match=match):
        app.add_repeatable(report, cron=expression, tz=tz)
    with pytest.raises(ConfigError, match=match):
        app.cron(expression, tz=tz)
    assert app.repeatables == {}


def test_ticks_between_and_tick_ids() -> None:
    every = EverySchedule(10)
    assert ticks_between(every, 100, 135, 10) == [130, 120, 110]
    assert ticks_between(every, 100, 135, 2) == [130, 120]
    assert ticks_between(every, 130, 135, 10) == []
    assert tick_id("report", 1_800_000_000.0) == "cron-report-1800000000"


# -- repeatable definitions ----------------------------------------------------------------


def test_repeatable_definitions() -> None:
    app = Aarq(prefix="units")

    @app.task(queue="reports")
    async def report(ctx: Context, kind: str, *, full: bool = False) -> None: ...

    daily = app.add_repeatable(
        report, cron="0 6 * * *", tz="Europe/Paris", args=["daily"], kwargs={"full": True}
    )
    assert (daily.name, daily.queue, daily.missed) == ("report", "reports", Missed.LATEST)
    job = daily.prepare(1_800_000_000.0)
    assert (job.job_id, job.queue, job.run_at) == ("cron-report-1800000000", "reports", None)
    quick = app.add_repeatable(report, every=60, args=["quick"], name="quick", missed="all")
    assert quick.missed is Missed.ALL
    assert [t.minute for t in quick.next_fires(3, ts("2026-01-01T00:00:30", UTC))] == [1, 2, 3]
    assert set(app.repeatables) == {"report", "quick"}

    @app.cron("*/5 * * * *", name="tidy")
    async def tidy(ctx: Context) -> None: ...

    assert app.tasks["tidy"] is tidy
    assert app.repeatables["tidy"].task is tidy

    @app.cron("0 0 * * *", name="nightly", args=["nightly"])
    @app.task(queue="reports", retries=0)
    async def nightly(ctx: Context, kind: str) -> None: ...

    assert app.repeatables["nightly"].task.options.retries == 0

    bad: list[tuple[dict[str, object], str]] = [
        ({"every": 60, "args": ["x"]}, "duplicate repeatable name 'report'"),
        ({"every": 60, "cron": "* * * * *", "name": "x"}, "exactly one of"),
        ({"name": "x"}, "exactly one of"),
        ({"every": 60, "tz": "UTC", "name": "x"}, "tz applies to cron"),
        ({"every": 60, "name": "no spaces"}, "invalid repeatable name"),
        ({"every": 60, "name": "x", "missed": "sometimes"}, "missed must be one of"),
        ({"every": 60, "name": "x", "args": []}, "missing a required argument"),
        ({"every": 60, "name": "x", "args": ["a"], "kwargs": {"nope": 1}}, "nope"),
        ({"every": 60, "name": "x", "args": [object()]}, "encode"),
    ]
    for options, match in bad:
        with pytest.raises(ConfigError, match=match):
            app.add_repeatable(report, **options)  # type: ignore[arg-type]


def test_delay_and_run_at_options() -> None:
    app = Aarq(prefix="units")

    @app.task
    async def later(ctx: Context) -> None: ...

    assert CallOptions(delay=5).due_time(100.0) == 105.0
    assert CallOptions(run_at=50.0).due_time(100.0) is None  # in the past: at once
    assert CallOptions().due_time(100.0) is None
    job = later.with_options(delay=timedelta(minutes=1)).prepare()
    assert job.run_at is not None
    job = later.with_options(run_at=datetime(2999, 1, 1, tzinfo=UTC)).prepare()
    assert job.run_at == datetime(2999, 1, 1, tzinfo=UTC).timestamp()
    assert later.with_options(delay=0).prepare().run_at is None
    with pytest.raises(ConfigError, match="timezone-aware"):
        later.with_options(run_at=datetime(2999, 1, 1))
    with pytest.raises(ConfigError, match="not both"):
        later.with_options(delay=1, run_at=datetime(2999, 1, 1, tzinfo=UTC))
    with pytest.raises(ConfigError, match="delay"):
        later.with_options(delay=-1)
    with pytest.raises(ConfigError, match="run_at must be a datetime"):
        later.with_options(run_at=12.0)  # type: ignore[arg-type]


@pytest.mark.parametrize("delay", [math.inf, -math.inf, math.nan])
def test_a_non_finite_delay_is_refused(delay: float) -> None:
    app = Aarq(prefix="units")

    @app.task
    async def later(ctx: Context) -> None: ...

    with pytest.raises(ConfigError, match="delay must be a finite number"):
        later.with_options(delay=delay)
    with pytest.raises(ConfigError, match="delay must be a finite number"):
        CallOptions(delay=delay)
    with pytest.raises(ConfigError, match="run_at must be a finite unix time"):
        CallOptions(run_at=delay)


def test_far_future_due_times() -> None:
    app = Aarq(prefix="units")

    @app.task
    async def later(ctx: Context) -> None: ...

    # Centuries ahead is fine: the scheduler holds it, handing it back a day at a time.
    assert later.with_options(delay=1e10).prepare().run_at is not None
    last = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert later.with_options(run_at=last).prepare().run_at == MAX_RUN_AT
    # Beyond the last second a datetime can express, it is an error at the enqueue.
    with pytest.raises(ConfigError, match="after 9999-12-31T23:59:59Z"):
        later.with_options(delay=1e12).prepare()
    with pytest.raises(ConfigError, match="after 9999-12-31T23:59:59Z"):
        later.with_options(run_at=datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=5))))


def test_reading_the_run_at_header() -> None:
    assert read_run_at(None) is None
    assert read_run_at("  ") is None
    assert read_run_at("1767225600.5") == 1767225600.5
    assert read_run_at("2026-01-01T00:00:00Z") == 1767225600.0
    assert read_run_at("9999-12-31T23:59:59Z") == MAX_RUN_AT
    assert read_run_at("-5") == -5.0  # long past: due at once
    for bad, why in [
        ("inf", "not a finite time"),
        ("-inf", "not a finite time"),
        ("nan", "not a finite time"),
        ("1e400", "not a finite time"),
        ("1e300", "after 9999-12-31"),
        ("10000-01-01T00:00:00Z", "neither unix seconds nor an RFC 3339 time"),
        ("tomorrow", "neither unix seconds nor an RFC 3339 time"),
        ("2026-01-01T00:00:00", "no time zone"),
    ]:
        with pytest.raises(ValueError, match=why):
            read_run_at(bad)


# -- rate limits ---------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_bursts_then_returns_tokens_one_interval_after_use() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, 1.0, clock=clock)
    assert bucket.take(3) == 3
    clock.now += 0.4
    assert bucket.take(10) == 2  # a burst of 5 in total
    assert bucket.available() == 0
    assert bucket.wait_time() == pytest.approx(0.6)
    clock.now += 0.6  # the first 3 come back
    assert bucket.available() == 3
    assert bucket.take(4) == 3
    bucket.give_back(1)
    assert bucket.available() == 1
    clock.now += 0.4  # the 2 taken at +0.4 come back
    assert bucket.available() == 3


def test_token_bucket_never_admits_more_than_the_limit_in_any_window() -> None:
    rng = random.Random(7)
    clock = FakeClock()
    limit, interval = 7, 0.5
    bucket = TokenBucket(limit, interval, clock=clock)
    starts: list[float] = []
    for _ in range(3000):
        clock.now += rng.choice([0.0, 0.0, 0.001, 0.01, 0.05, 0.2])
        got = bucket.take(rng.randint(1, 4))
        starts += [clock.now] * got
        if rng.random() < 0.1 and got:
            bucket.give_back(1)
            starts.pop()
    assert max_in_window(starts, interval) == limit

    busy: list[float] = []  # a queue that always has work runs at the limit
    for _ in range(5000):
        clock.now += 0.001
        busy += [clock.now] * bucket.take(3)
    assert max_in_window(busy, interval) == limit
    assert len(busy) >= limit * (busy[-1] - busy[0]) / interval


def max_in_window(starts: list[float], interval: float) -> int:
    """Most starts in any window [t, t + interval)."""
    most, j = 0, 0
    for i, start in enumerate(starts):
        while j < len(starts) and starts[j] < start + interval:
            j += 1
        most = max(most, j - i)
    return most


def test_token_bucket_unlimited_zero_and_reconfigured() -> None:
    clock = FakeClock()
    unlimited = TokenBucket(None, clock=clock)
    assert unlimited.take(1000) == 1000
    assert unlimited.available() is None
    assert unlimited.wait_time() == 0
    paused = TokenBucket(0, 1.0, clock=clock)
    assert paused.take(1) == 0
    assert math.isinf(paused.wait_time())
    paused.reconfigure(2, timedelta(seconds=3))
    assert (paused.take(5), paused.interval) == (2, 3.0)
    for limit, interval in [(-1, 1.0), (1.5, 1.0), (True, 1.0), (1, 0), (1, -2)]:
        with pytest.raises(ConfigError):
            TokenBucket(limit, interval)  # type: ignore[arg-type]


def test_grant_log_helpers() -> None:
    grants = [(10.0, 2), (10.5, 3), (11.2, 1)]
    live = prune(grants, 11.1, 1.0)
    assert live == [(10.5, 3), (11.2, 1)]
    assert free_tokens(live, 5) == 1
    assert next_token_in(live, 11.1, 1.0, 5) == 0.0
    assert next_token_in(live, 11.1, 1.0, 4) == pytest.approx(0.4)
    assert math.isinf(next_token_in([], 0.0, 1.0, 0))


def test_queue_rate_limit_options() -> None:
    app = Aarq(prefix="units")
    options = app.queue("email", rate_limit=10, rate_interval=timedelta(seconds=2))
    assert (options.rate_limit, options.rate_interval) == (10, 2.0)
    assert app.queue("email", ack_wait=5).rate_limit == 10  # other settings keep it
    assert app.queue("other").rate_limit is None
    with pytest.raises(ConfigError, match="rate_limit"):
        app.queue("email", rate_limit=-1)


# -- pause times ---------------------------------------------------------------------------


def test_pause_end_and_until_parsing() -> None:
    now = datetime(2026, 1, 16, 12, 0, tzinfo=UTC)
    assert pause_end(None, now) is None
    assert pause_end(timedelta(minutes=5), now) == datetime(2026, 1, 16, 12, 5, tzinfo=UTC)
    with pytest.raises(ConfigError, match="future"):
        pause_end(datetime(2026, 1, 16, 11, 0, tzinfo=UTC), now)
    with pytest.raises(ConfigError, match="timezone-aware"):
        pause_end(datetime(2027, 1, 1), now)

    morning = datetime(2026, 1, 16, 8, 0, tzinfo=PARIS)
    assert parse_until("09:00", morning) == datetime(2026, 1, 16, 9, 0, tzinfo=PARIS)
    assert parse_until("07:30", morning) == datetime(2026, 1, 17, 7, 30, tzinfo=PARIS)
    assert parse_until("2026-01-20T10:00+01:00", morning) == datetime(
        2026, 1, 20, 10, 0, tzinfo=PARIS
    )
    for bad in ("25:00", "9h", "2020-01-01T00:00Z", "soon"):
        with pytest.raises(ValueError, match=r"time|ISO|passed"):
            parse_until(bad, morning)
