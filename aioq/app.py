"""`Aarq`: the application object that owns the tasks, the connection and the hooks."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import sys
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import UTC, datetime, timedelta, tzinfo
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, Unpack, overload

import msgspec

from aioq._connections import LoopConnections, WorkerUsers
from aioq._sync import BackgroundLoop, running_loop
from aioq.backend import Broker
from aioq.backoff import BackoffLike
from aioq.client import find_job, publish_many, publish_prepared
from aioq.clock import SYSTEM_CLOCK, Clock
from aioq.context import AfterJobHook, BeforeJobHook, Context, Hook, State
from aioq.cron import CronSchedule
from aioq.deadletter import DeadLetters
from aioq.errors import (
    ConfigError,
    EnqueueError,
    UnknownTaskError,
)
from aioq.flows import Flow, Signature, start_chain, start_group
from aioq.groups import DEFAULT_RECHECK_S, GroupLimit, GroupLimits
from aioq.inspection import QueueStats, WorkerStatus, queue_stats, worker_statuses
from aioq.job import Job
from aioq.naming import Names, validate_queue, validate_task_name
from aioq.options import QueueOptions, TaskOptions, seconds
from aioq.priority import DEFAULT_PRIORITY
from aioq.publishing import pause_end
from aioq.ratelimit import check_rate, running_cap
from aioq.repeatable import CronDecorator, Missed, Repeatable, define_repeatable
from aioq.replay import History
from aioq.settings import ConnectionOptions, NatsSettings, Replication, validate_domain
from aioq.task import PreparedJob, Task
from aioq.wire import Event

__all__ = ["Aarq", "AfterJobHook", "BeforeJobHook", "Hook"]

P = ParamSpec("P")
R = TypeVar("R")


class TaskDecorator(Protocol):
    """What ``@app.task(...)`` returns: a decorator turning a function into a `Task`."""

    @overload
    def __call__(
        self, fn: Callable[Concatenate[Context, P], Coroutine[Any, Any, R]]
    ) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[Concatenate[Context, P], R]) -> Task[P, R]: ...


class Aarq:
    """An aioq application: its tasks, its NATS connection and its hooks.

    Args:
        servers: NATS URL or list of URLs of one cluster.
        prefix: Namespace of every subject, stream and bucket the app uses.
        name: Client name shown in the server's connection list.
        credentials: Path of a NATS ``.creds`` file (JWT + nkey).
        token: Authentication token.
        user: User name (with `password`).
        password: Password (with `user`).
        tls: A ready TLS context (instead of `tls_ca`, `tls_cert` and `tls_key`).
        tls_ca: CA file (PEM) that signed the servers' certificates; without it, ``tls://``
            servers are checked against the system's trusted CAs.
        tls_cert: Client certificate file (PEM) for mutual TLS, with `tls_key`.
        tls_key: Its private key file (PEM, unencrypted).
        nkey_seed: Path of an NKey seed file (``SU...``): authenticates as that NKey user.
        inbox_prefix: Subject prefix of the reply inboxes (default ``_INBOX``): give each
            role its own, and allow each user only its own (see `aioq.permissions`).
        connect_timeout: Seconds to wait for each server on the first connect.
        ack_wait: Default lease of a delivered job (see `queue`).
        keep_result: Seconds job records and results are kept (one day; 0 keeps none). Set
            when the results bucket is created.
        max_queued: Most jobs waiting in each queue (delayed ones not counted): an enqueue
            beyond it raises `QueueFullError` and stores nothing. Set on the jobs stream when
            the app connects; -1 removes the cap, None (default) leaves the stream's as is.
        replicas: Copies the servers keep of every stream and bucket the app creates (3 on
            a 3-node cluster survives a node loss). None: one, and existing ones unchanged;
            a number also changes existing ones to it.
        placement_tags: Server tags that every node holding the app's streams must carry.
        jetstream_domain: The ``jetstream { domain }`` of the cluster whose JetStream the app
            uses, for an app connected to a leaf node of that cluster (docs/deployment.md).

    The app connects on first use; ``async with app:`` or `connect`/`close` make the lifecycle
    explicit. It holds one connection per event loop, so it works from any loop (successive
    ``asyncio.run`` calls, threads with loops of their own); `enqueue_sync` enqueues from code
    that runs no loop.

    Attributes:
        sync_timeout: Most seconds `enqueue_sync` waits for the job to be stored (30).
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        prefix: str = "aioq",
        ack_wait: float | timedelta = 30.0,
        keep_result: float | timedelta = 86_400.0,
        max_queued: int | None = None,
        replicas: int | None = None,
        placement_tags: Sequence[str] | None = None,
        jetstream_domain: str | None = None,
        **connection: Unpack[ConnectionOptions],
    ) -> None:
        self.names = Names(prefix)
        if max_queued is not None and (
            not isinstance(max_queued, int)
            or isinstance(max_queued, bool)
            or max_queued == 0
            or max_queued < -1
        ):
            raise ConfigError(
                f"max_queued must be a positive number of jobs or -1, got {max_queued!r}"
            )
        self.max_queued = max_queued
        self.settings = NatsSettings(
            replication=Replication.build(replicas, placement_tags),
            domain=validate_domain(jetstream_domain),
        ).connected_by(servers, **connection)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.state = State()
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.before_job_hooks: list[BeforeJobHook] = []
        self.after_job_hooks: list[AfterJobHook] = []
        self.repeatables: dict[str, Repeatable] = {}
        self.keep_result = seconds(keep_result, "keep_result", allow_zero=True) or 0.0
        self._default_queue_options = QueueOptions(ack_wait=seconds(ack_wait, "ack_wait") or 30.0)
        self._queue_options: dict[str, QueueOptions] = {}
        #: Limits per group of jobs (``with_options(group=...)``), set with `group_limit`.
        self.group_limits = GroupLimits()
        self._chosen_broker: Broker | None = None
        self._connections = LoopConnections(self._new_broker, _close_at_loop_end)
        self._sync_loop = BackgroundLoop("aioq-enqueue-sync")
        self.sync_timeout = 30.0

    @property
    def prefix(self) -> str:
        """The namespace of this app's subjects, streams and buckets."""
        return self.names.prefix

    @property
    def clock(self) -> Clock:
        """The time the app's jobs live by: its broker's clock (a `FakeClock` in tests)."""
        broker = self._connections.current() or self._chosen_broker
        return broker.clock if broker is not None else SYSTEM_CLOCK

    def configure(
        self, *, settings: NatsSettings | None = None, names: Names | None = None
    ) -> None:
        """Replace the connection settings or the names (prefix); only before it connects.

        The one place the app's connection configuration changes after construction:
        `use_servers`, `use_connection` and the test harness go through it.
        """
        self._check_unconnected("configure")
        if settings is not None:
            self.settings = settings
        if names is not None:
            self.names = names

    def _check_unconnected(self, method: str) -> None:
        if self._connections.any() is not None:
            raise ConfigError(f"{method}() must be called before the app connects")

    def use_broker(self, broker: Broker | None) -> None:
        """Run the app on `broker` instead of NATS (None: NATS again); only while unconnected.

        For tests: ``app.use_broker(MemoryBroker())`` runs everything in memory, no server
        needed (see `aioq.testing`). `connect` then connects that broker.
        """
        self._check_unconnected("use_broker")
        self._chosen_broker = broker

    def use_servers(self, servers: str | Sequence[str]) -> None:
        """Point the app at other servers; only before it connects (used by the CLI's -s)."""
        self._check_unconnected("use_servers")
        self.configure(settings=self.settings.connected_by(servers))

    def use_connection(
        self,
        *,
        servers: str | Sequence[str] | None = None,
        prefix: str | None = None,
        **connection: Unpack[ConnectionOptions],
    ) -> None:
        """Override the servers, prefix, credentials or TLS files; only before it connects.

        Arguments left None keep the app's own value (used by the CLI's connection options).
        """
        self._check_unconnected("use_connection")
        self.configure(
            settings=self.settings.connected_by(servers, **connection),
            names=Names(prefix) if prefix is not None else None,
        )

    # -- definition -----------------------------------------------------------------------

    @overload
    def task(
        self, fn: Callable[Concatenate[Context, P], Coroutine[Any, Any, R]], /
    ) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[Concatenate[Context, P], R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        retries: int = 3,
        timeout: float | timedelta | None = None,
        ttl: float | timedelta | None = None,
        backoff: BackoffLike | None = None,
        no_retry_for: tuple[type[BaseException], ...] = (),
        priority: int = DEFAULT_PRIORITY,
        group: str | None = None,
    ) -> TaskDecorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        retries: int = 3,
        timeout: float | timedelta | None = None,
        ttl: float | timedelta | None = None,
        backoff: BackoffLike | None = None,
        no_retry_for: tuple[type[BaseException], ...] = (),
        priority: int = DEFAULT_PRIORITY,
        group: str | None = None,
    ) -> Any:
        """Register a task: ``@app.task`` or ``@app.task(queue="email", retries=5, ...)``.

        Args:
            fn: The function, when used as a bare decorator. Its first parameter is the `Context`.
            name: Registered name; defaults to the function's name.
            queue: Queue the task's jobs go to.
            retries: Attempts after the first one before the job is dead-lettered.
            timeout: Seconds after which a run is cancelled and counts as failed.
            ttl: Seconds after enqueue after which an unstarted job is dropped (dead-lettered,
                reason ``expired``).
            backoff: Delay before each retry: a `Backoff`, seconds, a list or a function of
                the attempt. Default: exponential from 1 s, doubling, capped at 300 s, ±20 %.
            no_retry_for: Exception classes that fail the job at once, without retries.
            priority: Priority level of the task's jobs, 0 (lowest) to 9 (highest), default
                5: a worker starts higher levels first, lower ones at a smaller share
                (docs/priorities.md).
            group: The group whose limits the task's jobs obey (``app.group_limit``), unless
                an enqueue names another with ``with_options(group=...)``.

        Raises:
            ConfigError: On an invalid option, or a name that is already registered.
        """
        options = TaskOptions.build(
            queue=queue,
            retries=retries,
            timeout=timeout,
            ttl=ttl,
            backoff=backoff,
            no_retry_for=no_retry_for,
            priority=priority,
            group=group,
        )

        def register(function: Callable[..., Any]) -> Task[Any, Any]:
            if not callable(function):
                raise ConfigError(f"@app.task decorates a function, got {function!r}")
            task_name = validate_task_name(name or function.__name__)
            if task_name in self.tasks:
                existing = self.tasks[task_name].fn
                raise ConfigError(
                    f"duplicate task name {task_name!r}: already registered by "
                    f"{existing.__module__}.{existing.__qualname__}; pass name=... to one of them"
                )
            task: Task[Any, Any] = Task(self, function, task_name, options)
            self.tasks[task_name] = task
            return task

        return register(fn) if fn is not None else register

    def on_startup(self, hook: Hook) -> Hook:
        """Register ``async def hook(state)`` to run when a worker starts, before any job."""
        self.startup_hooks.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Register ``async def hook(state)`` to run when a worker stops, after its last job."""
        self.shutdown_hooks.append(hook)
        return hook

    def before_job(self, hook: BeforeJobHook) -> BeforeJobHook:
        """Register ``async def hook(ctx)`` to run before every attempt, in registration order.

        It runs inside the attempt: an exception fails the attempt like one from the task (and
        is retried the same way), and the task's timeout covers it.
        """
        self.before_job_hooks.append(hook)
        return hook

    def after_job(self, hook: AfterJobHook) -> AfterJobHook:
        """Register ``async def hook(ctx, record)`` to run after every attempt is settled.

        `record` is the job's new state (succeeded, retrying, failed or aborted, with result
        or error). Hooks run in registration order; an exception is logged and ignored.
        """
        self.after_job_hooks.append(hook)
        return hook

    def queue(
        self,
        name: str,
        *,
        ack_wait: float | timedelta | None = None,
        max_ack_pending: int | None = None,
        max_running: int | None = None,
        rate_limit: int | None = None,
        rate_interval: float | timedelta | None = None,
        history: float | timedelta | None = None,
    ) -> QueueOptions:
        """Set (or read, with no options) the consumer settings of queue `name`.

        Args:
            name: The queue.
            ack_wait: Lease of a delivered job in seconds: a job whose worker goes silent for
                this long is delivered again. Running jobs are kept leased by their worker.
            max_ack_pending: Cap on jobs delivered and not yet settled, over all workers
                (-1: no cap). Jobs waiting out a retry delay count against it.
            max_running: Most jobs of the queue running at once over all its workers, held
                by the server whatever the workers' concurrency (docs/rate-limits.md): the
                consumer's ``max_ack_pending``, so jobs waiting out a retry delay hold a
                place too.
            rate_limit: Most job starts per `rate_interval` over all the queue's workers
                together (0 pauses the queue; see docs/rate-limits.md).
            rate_interval: Seconds of the rate limit's window (default 1).
            history: Keep the message of each job that succeeds for this long (seconds), so
                that ``app.history.replay`` or ``aioq replay`` can run it again
                (docs/replay.md). Off by default: nothing is kept.
        """
        current = self._queue_options.get(name)
        if current is None:
            validate_queue(name)
            current = self._default_queue_options
        max_ack_pending = running_cap(max_running, max_ack_pending)
        if ack_wait is not None or max_ack_pending is not None:
            current = dataclasses.replace(
                current,
                ack_wait=seconds(ack_wait, "ack_wait") or current.ack_wait,
                max_ack_pending=current.max_ack_pending
                if max_ack_pending is None
                else max_ack_pending,
            )
            self._queue_options[name] = current
        if rate_limit is not None or rate_interval is not None:
            limit, interval = check_rate(
                current.rate_limit if rate_limit is None else rate_limit,
                current.rate_interval if rate_interval is None else rate_interval,
            )
            current = dataclasses.replace(current, rate_limit=limit, rate_interval=interval)
            self._queue_options[name] = current
        if history is not None:
            current = dataclasses.replace(current, history=seconds(history, "history"))
            self._queue_options[name] = current
        return current

    def group_limit(
        self,
        group: str | None = None,
        *,
        rate_limit: int | None = None,
        rate_interval: float | timedelta = 1.0,
        max_running: int | None = None,
        recheck: float | timedelta = DEFAULT_RECHECK_S,
    ) -> GroupLimit:
        """Limit the jobs of `group` (a tenant, an API key) over every worker of the app.

        A job joins a group with ``with_options(group=...)`` or ``@app.task(group=...)``. The
        limits count the group's jobs in every queue of the app, and hold for all workers
        together (docs/flow-control.md). A job over its group's limit goes back to its queue
        for a while, without using one of its attempts; other groups' jobs run meanwhile.

        Args:
            group: The group; None sets the default limit of every group without its own.
            rate_limit: Most starts of the group's jobs per `rate_interval` (0 pauses it).
            rate_interval: Seconds of the rate limit's window (default 1).
            max_running: Most of the group's jobs running at once. A worker that dies gives
                its jobs' places back when their leases run out (the queue's ``ack_wait``).
            recheck: Seconds a job over `max_running` waits before it is offered again.
        """
        return self.group_limits.set(
            group,
            rate_limit=rate_limit,
            rate_interval=rate_interval,
            max_running=max_running,
            recheck=recheck,
        )

    # -- scheduling and flow control ------------------------------------------------------

    def add_repeatable(
        self,
        task: Task[Any, Any],
        *,
        every: float | timedelta | None = None,
        cron: str | None = None,
        tz: str | tzinfo | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        missed: Missed | str = Missed.LATEST,
        ttl: float | timedelta | None = None,
    ) -> Repeatable:
        """Enqueue `task` on a schedule: ``every=timedelta(minutes=5)`` or ``cron="0 9 * * *"``.

        Every running scheduler (one per worker by default, or ``aioq scheduler``) fires
        each tick, and the tick's job id ``cron-<name>-<unix time>`` makes JetStream store it
        once, so each tick runs once however many schedulers run (docs/scheduling.md).

        Args:
            task: The task to enqueue.
            every: Interval (whole seconds >= 1); ticks fall on multiples of it since the epoch.
            cron: Cron expression, five fields (or six, seconds last), evaluated in `tz`.
            tz: IANA time zone of `cron` (default UTC).
            args: Positional arguments of every job.
            kwargs: Keyword arguments of every job.
            name: Unique name (default: the task's name); part of every tick's job id.
            missed: Ticks missed while no scheduler ran: ``"latest"`` fires the most recent
                once (default), ``"all"`` fires each, ``"skip"`` none.
            ttl: Drop a tick's job if it has not started this many seconds after its tick.

        Raises:
            ConfigError: Invalid schedule, time zone, name, arguments, or a name already used.
        """
        repeatable = define_repeatable(
            task,
            every=every,
            cron=cron,
            tz=tz,
            args=args,
            kwargs=kwargs,
            name=name,
            missed=missed,
            ttl=ttl,
        )
        if repeatable.name in self.repeatables:
            raise ConfigError(
                f"duplicate repeatable name {repeatable.name!r}: pass name=... to tell them apart"
            )
        self.repeatables[repeatable.name] = repeatable
        return repeatable

    def cron(
        self,
        expression: str,
        *,
        tz: str | tzinfo | None = None,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        name: str | None = None,
        missed: Missed | str = Missed.LATEST,
        ttl: float | timedelta | None = None,
    ) -> CronDecorator:
        """Decorator: ``@app.cron("0 * * * *")`` on a function (or on an ``@app.task``).

        A plain function is registered as a task with default options first; stack it on
        ``@app.task(...)`` to choose them. Returns the task. See `add_repeatable`.
        """
        schedule = CronSchedule(expression, tz)  # a bad expression fails at the decorator line

        def register(target: Any) -> Task[Any, Any]:
            task = target if isinstance(target, Task) else self.task(target)
            self.add_repeatable(
                task,
                cron=schedule.expression,
                tz=tz,
                args=args,
                kwargs=kwargs,
                name=name,
                missed=missed,
                ttl=ttl,
            )
            return task

        return register  # type: ignore[return-value]

    async def pause_queue(
        self, queue: str, until: datetime | timedelta | None = None
    ) -> datetime | None:
        """Stop every worker of `queue` from starting its jobs, until `until` or `resume_queue`.

        Uses the server's consumer pause (nats-server 2.11+): jobs stay queued, running jobs
        finish, and workers keep running. Returns when the pause ends (None: until resumed).

        Raises:
            BrokerError: The server is older than 2.11, or the queue has no consumer yet.
        """
        validate_queue(queue)
        end = pause_end(until, datetime.fromtimestamp(self.clock.time(), UTC))
        broker = await self.connect()
        await broker.control.pause(queue, end)
        return end

    async def resume_queue(self, queue: str) -> None:
        """End a pause of `queue` at once."""
        validate_queue(queue)
        broker = await self.connect()
        await broker.control.resume(queue)

    async def queue_paused_until(self, queue: str) -> datetime | None:
        """When the pause of `queue` ends, or None if it is not paused."""
        validate_queue(queue)
        broker = await self.connect()
        return await broker.control.paused_until(queue)

    # -- connection -----------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True once the app holds a connection in the running loop (outside one: in any loop)."""
        if running_loop() is not None:
            return self._connections.current() is not None
        return self._connections.any() is not None

    @property
    def worker_users(self) -> WorkerUsers:
        """The workers running on this app's connections (the last one closes what it opened)."""
        return self._connections.workers

    async def connect(self) -> Broker:
        """Connect to NATS (once per event loop) and make sure the job streams exist.

        Each event loop gets its own connection, closed when that loop shuts down (as at the
        end of ``asyncio.run``) if `close` did not close it before. With `use_broker`,
        connects that broker instead.
        """
        return await self._connections.connect()

    def _new_broker(self) -> Broker:
        if self._chosen_broker is not None:
            return self._chosen_broker
        from aioq._nats import NatsBroker  # loads nats only for an app that uses it

        return NatsBroker(self.settings, self.names, self.keep_result, self.max_queued)

    async def close(self) -> None:
        """Flush and close the running loop's connection; the app reconnects if used again.

        `enqueue_sync`'s connection is closed by `close_sync` (or at interpreter exit).
        """
        await self._connections.close()

    def close_sync(self) -> None:
        """Close `enqueue_sync`'s connection and stop its thread; call it from sync code.

        Runs at interpreter exit too. A later `enqueue_sync` connects again.
        """
        self._sync_loop.stop()

    async def __aenter__(self) -> Aarq:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- enqueue --------------------------------------------------------------------------

    def get_task(self, name: str) -> Task[Any, Any]:
        """The task registered as `name`; raises `UnknownTaskError` with the known names."""
        try:
            return self.tasks[name]
        except KeyError:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise UnknownTaskError(f"unknown task {name!r} (registered: {known})") from None

    async def enqueue(self, task_name: str, /, *args: Any, **kwargs: Any) -> Job[Any]:
        """Enqueue a registered task by name; same as ``await task.enqueue(*args, **kwargs)``."""
        return await self.get_task(task_name).enqueue(*args, **kwargs)

    def enqueue_sync(self, task_name: str, /, *args: Any, **kwargs: Any) -> Job[Any]:
        """Enqueue a registered task by name from sync code; see `Task.enqueue_sync`."""
        return self.get_task(task_name).enqueue_sync(*args, **kwargs)

    async def publish(self, job: PreparedJob) -> Job[Any]:
        """Publish one prepared job and wait for the broker's acknowledgement."""
        return await publish_prepared(self, job)

    def publish_sync(self, job: PreparedJob) -> Job[Any]:
        """`publish` for code that runs no event loop; safe to call from any thread.

        The job is published from the app's own event loop, in a daemon thread started on
        first use, and this call blocks until the broker stored it.

        Raises:
            RuntimeError: Called from a thread running an event loop, which it would block.
            EnqueueError: Not stored within `sync_timeout` seconds, or `close_sync` ran first.
        """
        if running_loop() is not None:
            raise RuntimeError(
                f"enqueue_sync() of task {job.task!r} was called inside a running event loop, "
                f"which it would block: use `await {job.task}.enqueue(...)` (or "
                f"`await app.enqueue({job.task!r}, ...)`) in async code"
            )
        try:
            return self._sync_loop.run(lambda: self.publish(job), self.sync_timeout)
        except TimeoutError:
            raise EnqueueError(
                f"job {job.job_id} of task {job.task!r} was not confirmed stored within "
                f"{self.sync_timeout:g}s (is NATS reachable?); retrying with the same job id "
                "is safe"
            ) from None
        except concurrent.futures.CancelledError:
            raise EnqueueError(
                f"job {job.job_id} of task {job.task!r}: app.close_sync() ran before it was "
                "confirmed stored; retrying with the same job id is safe"
            ) from None

    async def job(self, job_id: str, queue: str | None = None) -> Job[Any]:
        """A handle on an existing job, from its id (and queue, if you know it).

        Raises:
            JobNotFoundError: No queued, held or recorded job has this id.
        """
        return await find_job(self, job_id, queue)

    async def events(
        self, queue: str | None = None, kinds: Iterable[str] | None = None
    ) -> AsyncIterator[Event]:
        """Follow lifecycle events live: ``async for event in app.events(queue="email")``.

        Events are core NATS messages: you see those published while you listen.
        """
        broker = await self.connect()
        wanted = set(kinds) if kinds else None
        listener = await broker.events.listen(validate_queue(queue) if queue else None)
        decoder = msgspec.json.Decoder(Event)
        try:
            async for data in listener.messages():
                try:
                    event = decoder.decode(data)
                except msgspec.DecodeError:
                    continue
                if wanted is None or event.kind in wanted:
                    yield event
        finally:
            await listener.close()

    @property
    def history(self) -> History:
        """The succeeded jobs kept by queues with a history: list and replay them."""
        return History(self)

    @property
    def dead(self) -> DeadLetters:
        """The dead letters: list, inspect, retry and purge them."""
        return DeadLetters(self)

    async def queues(self) -> list[QueueStats]:
        """Every queue with its pending, in-flight, redelivered, delayed and dead counts.

        A queue is listed if a worker ever pulled from it (it has a consumer), if it holds
        jobs, delayed jobs or dead letters, or if one of this app's tasks uses it.
        """
        return await queue_stats(self)

    async def workers(self) -> list[WorkerStatus]:
        """The live workers (from their heartbeats), with seconds since each one's last beat."""
        return await worker_statuses(self)

    async def chain(self, *signatures: Signature) -> Flow:
        """Enqueue a chain: ``app.chain(a.s(1), b.s(), c.s())`` runs a, then b(result of a), ...

        Each job after the first waits (state ``waiting``) in the broker; if one fails, the
        rest are dead-lettered as ``dependency_failed``. ``await flow.result()`` is the last
        job's result (docs/flows.md).
        """
        return await start_chain(self, signatures)

    async def group(self, *signatures: Signature, callback: Signature | None = None) -> Flow:
        """Enqueue jobs to run in parallel, then `callback` with the list of their results.

        ``await flow.result()`` is the callback's result (without one: the list of results).
        """
        return await start_group(self, signatures, callback)

    async def enqueue_many(self, jobs: Iterable[PreparedJob]) -> list[Job[Any]]:
        """Publish many jobs (from ``task.prepare(...)``) and await their acknowledgements together.

        Raises:
            PartialEnqueueError: If any job was not stored; it lists which.
        """
        return await publish_many(self, jobs)


async def _close_at_loop_end(broker: Broker) -> None:
    # The loop is ending: the NATS broker skips waiting for the server's confirmation (an
    # app on another broker has not loaded the NATS package, and needs no import of it here).
    nats_package = sys.modules.get("aioq._nats")
    if nats_package is not None and isinstance(broker, nats_package.NatsBroker):
        await broker.close(flush=False)
    else:
        await broker.close()
