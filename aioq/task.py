"""`Task`: a decorated function, and the ways to enqueue it."""

from __future__ import annotations

import inspect
import math
import time
import typing
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

import msgspec

from aioq.arguments import ArgumentTypes, find_non_finite, may_be_non_finite
from aioq.context import Context
from aioq.errors import ArgumentsError, ConfigError, SerializationError
from aioq.job import Job
from aioq.options import CallOptions, DependencySpec, TaskOptions, UniqueSpec, seconds
from aioq.priority import DEFAULT_PRIORITY
from aioq.wire import JobMessage, encode

if TYPE_CHECKING:
    from aioq.app import Aarq
    from aioq.flows import Signature

__all__ = ["PreparedJob", "Task", "TaskCall"]

P = ParamSpec("P")
R = TypeVar("R")

TaskFunction = (
    Callable[Concatenate[Context, P], Awaitable[R]] | Callable[Concatenate[Context, P], R]
)


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """An encoded job, ready to publish; made by `Task.prepare` for `Aarq.enqueue_many`."""

    task: str
    queue: str
    job_id: str
    data: bytes
    #: Unix time before which the job must not start; None to start at once.
    run_at: float | None = None
    #: Message headers (a trace context), kept when a delayed job is released.
    headers: Mapping[str, str] | None = None
    #: The unique key the job claims before it is published (``with_options(unique=...)``).
    unique: UniqueSpec | None = None
    #: The jobs it waits for (``with_options(depends_on=...)``).
    depends: DependencySpec | None = None
    #: Priority level, 0 (lowest) to 9 (highest); it picks the subject the job goes to.
    priority: int = DEFAULT_PRIORITY


class Task(Generic[P, R]):
    """A function registered with ``@app.task``; enqueue it with `enqueue`.

    Attributes:
        name: Registered name; jobs refer to the task by it.
        fn: The decorated function.
        options: Queue, retries, timeout, ttl and backoff.
        is_async: False for a plain ``def``, which the worker runs in a thread.
    """

    def __init__(self, app: Aarq, fn: Callable[..., Any], name: str, options: TaskOptions) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.options = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self._full_signature = _signature(fn)
        self.result_type = _return_type(fn)
        self.signature = _without_ctx(self._full_signature, name)
        self._positional_range = _positional_range(self.signature)
        #: The annotated parameters' types; None when no parameter is annotated.
        self.argument_types = ArgumentTypes.of(fn, self.signature, name)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    @property
    def queue(self) -> str:
        """The queue the task's jobs go to."""
        return self.options.queue

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Raise `TypeError` unless the arguments fit the task (after its context).

        They must bind to its signature and, sent as JSON, convert to the annotated types.
        Binding the whole signature with a stand-in context also rejects a keyword argument
        named like the context parameter, which ``**kwargs`` would otherwise accept.
        """
        self._bind(args, kwargs)
        if self.argument_types is not None:
            self.argument_types.check(args, kwargs)

    def arguments_from_json(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """A job's decoded arguments, checked and converted to the annotated types.

        Raises `TypeError` if they do not bind or do not convert.
        """
        self._bind(args, kwargs)
        if self.argument_types is None:
            return args, kwargs
        return self.argument_types.from_json(args, kwargs)

    def _bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        span = self._positional_range
        if span is not None and not kwargs and span[0] <= len(args) <= span[1]:
            return  # the common call, checked without the cost of `Signature.bind`
        self._full_signature.bind(None, *args, **kwargs)

    def _reject_non_finite(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        if not may_be_non_finite((args, kwargs)):
            return
        found = find_non_finite(self._full_signature.bind(None, *args, **kwargs).arguments)
        if found is not None:
            raise SerializationError(
                f"cannot enqueue {self.describe()}: argument {found}: JSON has no NaN or "
                "infinity (the task would receive None); send None, a string or a Decimal"
            )

    def describe(self) -> str:
        """The task's name and parameters, for error messages: ``add(a: int, b: int)``."""
        return f"{self.name}({', '.join(map(str, self.signature.parameters.values()))})"

    def with_options(
        self,
        *,
        job_id: str | None = None,
        ttl: float | timedelta | None = None,
        timeout: float | timedelta | None = None,
        retries: int | None = None,
        delay: float | timedelta | None = None,
        run_at: datetime | None = None,
        unique: bool = False,
        unique_key: str | None = None,
        unique_ttl: float | timedelta | None = None,
        depends_on: Sequence[Job[Any] | str] = (),
        on_dependency_failure: str = "dead",
        priority: int | None = None,
        group: str | None = None,
    ) -> TaskCall[P, R]:
        """Per-enqueue options, kept apart from the task's own arguments.

        Args:
            job_id: Your id for the job. Enqueueing the same id again within the dedupe window
                (2 minutes) stores nothing, so a retried enqueue cannot run a job twice.
            ttl: Drop the job (into the dead letters, reason ``expired``) if it has not started
                this many seconds after it was enqueued.
            timeout: Cancel a run after this many seconds.
            retries: Retries allowed for this job, instead of the task's.
            delay: Hold the job this many seconds (from each enqueue) before it may start.
            run_at: Hold the job until this timezone-aware time. Held jobs wait in JetStream,
                and the scheduler moves each to its queue when it is due (docs/scheduling.md).
            unique: While a job of this task with the same arguments is queued, held or
                running, enqueueing returns that job (``duplicate`` set) instead of a new one.
            unique_key: Like `unique`, with this key (per task) instead of the arguments.
            unique_ttl: Seconds after which the key is free even if its job has not ended
                (default one day, at most 30 days; docs/flows.md).
            depends_on: Jobs (handles or ids) that must succeed before this one is queued;
                meanwhile it is ``waiting`` (docs/flows.md).
            on_dependency_failure: ``"dead"`` dead-letters the job (reason
                ``dependency_failed``) if a dependency fails for good; ``"run"`` runs it anyway.
            priority: Priority level of this job, 0 (lowest) to 9 (highest), instead of the
                task's; higher levels start first (docs/priorities.md).
            group: The group (a tenant, an API key) whose limits the job's start obeys,
                instead of the task's group (``app.group_limit``; docs/flow-control.md).
        """
        return TaskCall(
            self,
            CallOptions(
                job_id=job_id,
                ttl=seconds(ttl, "ttl"),
                timeout=seconds(timeout, "timeout"),
                retries=retries,
                delay=seconds(delay, "delay", allow_zero=True),
                run_at=_timestamp(run_at),
                unique=unique,
                unique_key=unique_key,
                unique_ttl=seconds(unique_ttl, "unique_ttl"),
                depends_on=_ids(depends_on),
                on_dependency_failure=on_dependency_failure,
                priority=priority,
                group=group,
            ),
        )

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> PreparedJob:
        """Encode a job without publishing it, for `Aarq.enqueue_many`."""
        return TaskCall(self, _NO_OPTIONS).prepare(*args, **kwargs)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A call of this task for `Aarq.chain` and `Aarq.group`.

        In a chain, the previous job's result goes before `args`; in a group's callback, the
        list of the members' results does.
        """
        from aioq.flows import Signature

        return Signature(self, args, kwargs)

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Publish a job running this task with these arguments; returns its handle."""
        return await TaskCall(self, _NO_OPTIONS).enqueue(*args, **kwargs)

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """`enqueue` for sync code (views, scripts, threads): blocks until the job is stored.

        Safe to call from any thread; not from a running event loop (use `enqueue` there).
        """
        return TaskCall(self, _NO_OPTIONS).enqueue_sync(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"


class TaskCall(Generic[P, R]):
    """A task with per-call options, from `Task.with_options`."""

    __slots__ = ("call", "task")

    def __init__(self, task: Task[P, R], call: CallOptions) -> None:
        self.task = task
        self.call = call

    def prepare(self, *args: P.args, **kwargs: P.kwargs) -> PreparedJob:
        """Encode a job without publishing it, for `Aarq.enqueue_many`."""
        task = self.task
        try:
            task.check_arguments(args, kwargs)
        except TypeError as e:
            raise ArgumentsError(f"cannot enqueue {task.describe()}: {e}") from None
        job = build_job(
            task.name,
            task.queue,
            list(args),
            kwargs,
            self.call,
            now=task.app.clock.time(),
            priority=task.options.priority,
            group=task.options.group,
        )
        if b"null" in job.data:  # msgspec writes NaN and infinity as null, like None
            task._reject_non_finite(args, kwargs)
        return job

    async def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Publish a job running this task with these arguments; returns its handle."""
        return await self.task.app.publish(self.prepare(*args, **kwargs))

    def enqueue_sync(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """`enqueue` for sync code: blocks until the job is stored; see `Task.enqueue_sync`."""
        return self.task.app.publish_sync(self.prepare(*args, **kwargs))


_NO_OPTIONS = CallOptions()


def build_job(
    task: str,
    queue: str,
    args: list[Any],
    kwargs: dict[str, Any],
    call: CallOptions,
    *,
    now: float | None = None,
    priority: int = DEFAULT_PRIORITY,
    group: str | None = None,
) -> PreparedJob:
    """Encode one job message for `task` on `queue`, enqueued at `now` (default: the time).

    `priority` is the task's level and `group` the task's group; the call's own, if given, win.
    """
    job_id = call.job_id or uuid.uuid4().hex
    if call.priority is not None:
        priority = call.priority
    now = time.time() if now is None else now
    unique = _unique(task, args, kwargs, call)
    message = JobMessage(
        task=task,
        args=args,
        kwargs=kwargs,
        id=job_id,
        enqueued_at=now,
        ttl=call.ttl,
        timeout=call.timeout,
        retries=call.retries,
        depends_on=list(call.depends_on) or None,
        unique_key=unique.key if unique is not None else None,
        priority=None if priority == DEFAULT_PRIORITY else priority,
        group=call.group or group,
    )
    try:
        data = encode(message)
    except (TypeError, msgspec.EncodeError) as e:
        raise SerializationError(
            f"cannot encode the arguments of {task}: {e}; job arguments must be JSON-encodable "
            "(str, int, float, bool, None, lists, dicts, datetimes, dataclasses, msgspec Structs)"
        ) from None
    return PreparedJob(
        task=task,
        queue=queue,
        job_id=job_id,
        data=data,
        run_at=call.due_time(now),
        unique=unique,
        depends=DependencySpec(call.depends_on, call.on_dependency_failure)
        if call.depends_on
        else None,
        priority=priority,
    )


def _ids(jobs: Sequence[Job[Any] | str]) -> tuple[str, ...]:
    if isinstance(jobs, str | Job):
        jobs = [jobs]
    return tuple(dict.fromkeys(job.id if isinstance(job, Job) else job for job in jobs))


_sorted_encoder = msgspec.json.Encoder(order="sorted")


def _unique(
    task: str, args: list[Any], kwargs: dict[str, Any], call: CallOptions
) -> UniqueSpec | None:
    if not call.unique and call.unique_key is None:
        return None
    try:
        arguments = _sorted_encoder.encode([args, kwargs]) if call.unique_key is None else b""
    except (TypeError, msgspec.EncodeError):
        arguments = b""  # the job's own encoding below says what is wrong
    return UniqueSpec.of(task, call, arguments)


def _timestamp(run_at: datetime | None) -> float | None:
    if run_at is None:
        return None
    if not isinstance(run_at, datetime):
        raise ConfigError(f"run_at must be a datetime, got {run_at!r}")
    if run_at.tzinfo is None or run_at.utcoffset() is None:
        raise ConfigError(
            f"run_at must be timezone-aware, got the naive {run_at.isoformat()}: "
            "use e.g. datetime.now(UTC) + timedelta(minutes=5)"
        )
    return run_at.timestamp()


def _return_type(fn: Callable[..., Any]) -> Any:
    """The annotated return type, used to decode results; `Any` when absent or unresolvable."""
    try:
        hint = typing.get_type_hints(fn).get("return", Any)
    except Exception:
        return Any
    return Any if hint is None or hint is type(None) else hint


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    try:  # resolved annotations read better in error messages
        return inspect.signature(fn, eval_str=True)
    except Exception:
        return inspect.signature(fn)


def _positional_range(signature: inspect.Signature) -> tuple[int, float] | None:
    """How many positional arguments alone bind to `signature`; None if it needs keywords."""
    least, most = 0, 0.0
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            most = math.inf
        elif param.kind is inspect.Parameter.KEYWORD_ONLY:
            if param.default is inspect.Parameter.empty:
                return None
        elif param.kind is not inspect.Parameter.VAR_KEYWORD:
            most += 1
            if param.default is inspect.Parameter.empty:
                least = int(most)
    return least, most


def _without_ctx(signature: inspect.Signature, name: str) -> inspect.Signature:
    params = list(signature.parameters.values())
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        raise ConfigError(
            f"task {name} must take the job context as its first positional parameter: "
            f"def {name}(ctx, ...)"
        )
    return signature.replace(parameters=params[1:])
