"""Typed task arguments: checked against the annotations at enqueue, dead-lettered ``bad_args`` at
the worker when a foreign client sends the wrong types, and received as the annotated types."""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient

from aioq import Aarq, ArgumentsError, Context, SerializationError
from aioq.wire import DeadReason

from ..conftest import WorkerFactory
from ..helpers import eventually
from .test_worker_semantics import wait_dead


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Point(msgspec.Struct):
    x: int
    y: int


@dataclasses.dataclass
class Person:
    name: str
    born: datetime


class Opaque:
    """A class msgspec cannot build from JSON."""


NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture
async def offline() -> AsyncIterator[Aarq]:
    """An app that never connects: every check here happens before publishing."""
    application = Aarq("nats://127.0.0.1:1", prefix="typed")
    yield application
    assert not application.connected
    await application.close()


# -- at enqueue ------------------------------------------------------------------------------


async def test_wrong_argument_types_are_refused_at_enqueue_naming_the_parameter(
    offline: Aarq,
) -> None:
    @offline.task
    async def send_email(ctx: Context, n: int, items: list[int]) -> None: ...

    with pytest.raises(
        ArgumentsError,
        match=r"^cannot enqueue send_email\(n: int, items: list\[int\]\): "
        r"argument 'n' must be int, got 'notint': Expected `int`, got `str`$",
    ):
        await send_email.enqueue("notint", "notlist")  # type: ignore[arg-type]
    with pytest.raises(
        ArgumentsError, match=r"argument 'items' must be list\[int\], got 'notlist'"
    ):
        await send_email.enqueue(1, "notlist")  # type: ignore[arg-type]
    with pytest.raises(ArgumentsError, match=r"got `str` - at `items\[1\]`"):
        await offline.enqueue("send_email", 1, [1, "2"])
    with pytest.raises(ArgumentsError, match="argument 'n' must be int, got True"):
        send_email.prepare(True, [])  # a bool is not an int in JSON either
    send_email.prepare(1, [2, 3])


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        pytest.param((1, "x"), {}, r"argument 'when' must be datetime, got 'x'", id="datetime"),
        pytest.param((1, NOW, "red"), {}, r"argument 'ids\[0\]' must be UUID", id="var-positional"),
        pytest.param((1, NOW), {"colour": "blue"}, r"'colour' must be Colour", id="enum"),
        pytest.param((1, NOW), {"at": {"x": 1}}, r"'at' must be Point \| None.*`y`", id="struct"),
        pytest.param((1, NOW), {"extra": "1"}, r"'extra' must be int, got '1'", id="var-keyword"),
        pytest.param((-1, NOW), {}, r"argument 'count' .* Expected `int` >= 0", id="constraint"),
    ],
)  # fmt: skip
def test_each_kind_of_parameter_is_checked(
    offline: Aarq, args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    @offline.task
    async def job(
        ctx: Context,
        /,
        count: Annotated[int, msgspec.Meta(ge=0)],
        when: datetime,
        *ids: uuid.UUID,
        colour: Colour = Colour.RED,
        at: Point | None = None,
        **extra: int,
    ) -> None: ...

    with pytest.raises(ArgumentsError, match=message):
        job.prepare(*args, **kwargs)


def test_python_values_of_the_annotated_types_are_accepted(offline: Aarq) -> None:
    @offline.task
    async def job(
        ctx: Context, when: datetime, id: uuid.UUID, price: Decimal, colour: Colour, at: Point,
        who: Person, ratio: float, tags: dict[int, str], pair: tuple[int, str],
    ) -> None: ...  # fmt: skip

    person = Person("ada", NOW)
    job.prepare(NOW, uuid.uuid4(), Decimal("1.10"), Colour.GREEN, Point(1, 2), person, 0.5,
                {1: "a"}, (1, "b"))  # fmt: skip
    # What JSON carries for them is accepted too, as a foreign client would send it.
    offline.get_task("job").prepare(NOW.isoformat(), str(uuid.uuid4()), "1.10", "green",
                {"x": 1, "y": 2}, {"name": "ada", "born": NOW.isoformat()}, 1, {"1": "a"},
                [1, "b"])  # fmt: skip


def test_non_finite_floats_are_refused_at_enqueue(offline: Aarq) -> None:
    @offline.task
    async def typed(ctx: Context, value: float) -> None: ...

    @offline.task
    async def untyped(ctx, /, a, b=None, **rest):  # type: ignore[no-untyped-def]
        ...

    with pytest.raises(SerializationError, match=r"argument 'value' is nan: JSON has no NaN"):
        typed.prepare(float("nan"))
    with pytest.raises(SerializationError, match=r"argument 'b'\['k'\]\[1\] is -inf"):
        untyped.prepare(1, {"k": [1.0, float("-inf")]})
    with pytest.raises(SerializationError, match=r"argument 'rest'\['p'\]\['x'\] is inf"):
        untyped.prepare(1, p={"x": float("inf")})
    # None, and the text "null", are what they are.
    untyped.prepare(None, ["null", None, 1.5])
    untyped.prepare(None, [b"\xcb\x7f\xf8\x00", "\xcb\x7f\xf8"])  # bytes like a packed NaN
    typed.prepare(1e308)


def test_tasks_without_annotations_accept_anything_as_before(offline: Aarq) -> None:
    @offline.task
    async def bare(ctx, n, items):  # type: ignore[no-untyped-def]
        ...

    @offline.task
    async def loose(ctx: Context, n: Any, items: object) -> None: ...

    assert bare.argument_types is None
    assert loose.argument_types is None
    bare.prepare("notint", "notlist")
    loose.prepare("notint", "notlist")
    with pytest.raises(ArgumentsError, match="missing a required argument"):
        bare.prepare("notint")  # type: ignore[call-arg]  # the arity is still checked


def test_annotations_that_cannot_be_checked_accept_anything_with_a_warning(
    offline: Aarq, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aioq")

    @offline.task
    async def job(ctx: Context, thing: Opaque, ref: NotDefinedAnywhere, n: int) -> None:  # type: ignore[name-defined]  # noqa: F821
        ...

    unchecked = offline.get_task("job")
    unchecked.prepare("anything", 1, 2)
    with pytest.raises(ArgumentsError, match="argument 'n'"):
        unchecked.prepare("anything", 1, "x")
    warnings = [r.getMessage() for r in caplog.records]
    assert any("'thing' (Opaque) is not type-checked" in w for w in warnings), warnings
    assert any("'ref' is not type-checked" in w for w in warnings), warnings


# -- at the worker ---------------------------------------------------------------------------


async def test_typed_values_round_trip_to_the_task(app: Aarq, start_worker: WorkerFactory) -> None:
    received: list[tuple[Any, ...]] = []

    @app.task
    async def job(
        ctx: Context, when: datetime, id: uuid.UUID, price: Decimal, colour: Colour,
        priority: Priority, at: Point, who: Person, points: list[Point], *,
        tags: dict[int, str], wait: timedelta,
    ) -> None:  # fmt: skip
        received.append((when, id, price, colour, priority, at, who, points, tags, wait))

    await start_worker()
    sent: tuple[Any, ...] = (
        NOW, uuid.uuid4(), Decimal("19.99"), Colour.GREEN, Priority.HIGH, Point(1, 2),
        Person("ada", NOW), [Point(3, 4)],
    )  # fmt: skip
    await job.enqueue(*sent, tags={7: "seven"}, wait=timedelta(seconds=90))
    await eventually(lambda: received)
    [got] = received
    assert got == (*sent, {7: "seven"}, timedelta(seconds=90))
    assert [type(v) for v in got] == [type(v) for v in (*sent, {}, timedelta())]
    assert type(got[7][0]) is Point


async def test_foreign_job_with_wrong_types_is_dead_lettered_bad_args(
    app: Aarq, start_worker: WorkerFactory, nc: NatsClient
) -> None:
    ran: list[object] = []

    @app.task(retries=3, backoff=0.05)
    async def send_email(ctx: Context, n: int, items: list[int], when: datetime) -> None:
        ran.append((n, items, when))

    worker = await start_worker()
    js = nc.jetstream()
    bad = json.dumps({"task": "send_email", "args": ["notint", "notlist", "x"]}).encode()
    await js.publish(f"{app.prefix}.jobs.default", bad)

    [record] = await wait_dead(nc, app, 1)
    assert record.reason is DeadReason.BAD_ARGS
    assert record.attempts == 1
    assert record.payload == bad
    assert record.error is not None
    assert record.error.type == "ArgumentsError"
    assert record.error.message == (
        "send_email(n: int, items: list[int], when: datetime.datetime): "
        "argument 'n' must be int, got 'notint': Expected `int`, got `str`"
    )
    assert ran == []

    # A foreign client sending the JSON forms of the types is understood.
    good = {"task": "send_email", "args": [1, [2]], "kwargs": {"when": NOW.isoformat()}}
    await js.publish(f"{app.prefix}.jobs.default", json.dumps(good).encode())
    await eventually(lambda: ran)
    assert ran == [(1, [2], NOW)]
    assert (worker.stats.failed, worker.stats.retried, worker.stats.processed) == (1, 0, 1)


async def test_untyped_task_receives_the_json_values_as_before(
    app: Aarq, start_worker: WorkerFactory
) -> None:
    received: list[tuple[Any, ...]] = []

    @app.task
    async def bare(ctx, when, id):  # type: ignore[no-untyped-def]
        received.append((when, id))

    await start_worker()
    job_id = uuid.uuid4()
    await bare.enqueue(NOW, job_id)
    await eventually(lambda: received)
    assert received == [(NOW.isoformat().replace("+00:00", "Z"), str(job_id))]


def test_many_positional_arguments_are_converted_one_by_one(offline: Aarq) -> None:
    @offline.task
    async def job(ctx: Context, /, tag, *ids: int) -> None:  # type: ignore[no-untyped-def]
        ...

    values = [{"any": "thing"}, *range(40)]
    assert job.arguments_from_json(values, {}) == (values, {})
    values[36] = "35"
    with pytest.raises(TypeError, match=r"argument 'ids\[35\]' must be int, got '35'"):
        job.arguments_from_json(values, {})
    with pytest.raises(ArgumentsError, match=r"argument 'ids\[35\]' must be int, got '35'"):
        job.prepare(*values)


@dataclasses.dataclass
class Positive:
    value: int

    def __post_init__(self) -> None:
        if self.value <= 0:
            raise RuntimeError(f"{self.value} is not positive")


def test_an_error_raised_while_building_an_argument_names_the_parameter(offline: Aarq) -> None:
    @offline.task
    async def job(ctx: Context, amount: Positive) -> None: ...

    with pytest.raises(ArgumentsError, match=r"'amount' must be Positive.*RuntimeError: -1 is not"):
        offline.get_task("job").prepare({"value": -1})
    with pytest.raises(TypeError, match=r"'amount' must be Positive.*RuntimeError: -1 is not"):
        job.arguments_from_json([{"value": -1}], {})
    assert job.arguments_from_json([{"value": 1}], {}) == ([Positive(1)], {})
