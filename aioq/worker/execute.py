"""Running one delivered job: decode, checks, the task itself, then ack, retry or dead letter."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from aioq.context import Context
from aioq.errors import Retry
from aioq.task import Task
from aioq.transport import Broker, Delivery
from aioq.wire import DeadLetter, DeadReason, ErrorInfo, JobMessage, decode_job, encode

if TYPE_CHECKING:
    from aioq.app import Aarq

__all__ = ["Executor", "Lease", "Stats"]

log = logging.getLogger("aioq.worker")

# A traceback longer than this keeps its end, where the error is.
_MAX_TRACEBACK_CHARS: Final = 16_000
# Room left in a dead-letter record for everything but the payload.
_DEAD_RECORD_OVERHEAD: Final = 24_000
# Deliveries allowed beyond `retries + 1` that ended without an outcome (the worker died, or a
# forced stop handed the job back) before the job is declared crashed instead of run again.
UNSETTLED_DELIVERIES: Final = 2
# When the dead-letter record cannot be stored, the job comes back after this long.
_DEAD_LETTER_RETRY_S: Final = 5.0
# Threads for plain `def` tasks. They are started on demand and reused, so a worker uses about
# as many as its concurrency; the bound only matters for runs that outlive their timeout.
_MAX_THREADS: Final = 512


@dataclass(slots=True)
class Stats:
    """Counters reported in the worker's heartbeat."""

    processed: int = 0
    failed: int = 0
    retried: int = 0


@dataclass(slots=True, eq=False)
class Lease:
    """A running job whose lease the worker keeps alive."""

    delivery: Delivery
    period: float
    touched: float


class Executor:
    """Runs deliveries of one worker and settles each exactly once."""

    def __init__(self, app: Aarq, broker: Broker, worker_id: str) -> None:
        self.app = app
        self.tasks = app.tasks
        self.broker = broker
        self.worker_id = worker_id
        self.stats = Stats()
        self.leases: set[Lease] = set()

    async def run(self, delivery: Delivery, queue: str, lease_period: float) -> None:
        """Handle one delivery; never raises except `asyncio.CancelledError`."""
        try:
            await self._run(delivery, queue, lease_period)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or a broker failure while settling: the job comes back after its lease.
            log.exception(
                "job seq=%s queue=%s: unexpected error while handling it", delivery.seq, queue
            )

    async def _run(self, delivery: Delivery, queue: str, lease_period: float) -> None:
        try:
            job = decode_job(delivery.data)
        except Exception as e:  # msgspec errors, and RecursionError on absurd nesting
            await self._dead(
                delivery, queue, DeadReason.BAD_PAYLOAD, None, _error_info(e, tb=False)
            )
            return
        task = self.tasks.get(job.task)
        if task is None:
            known = ", ".join(sorted(self.tasks)) or "none"
            error = ErrorInfo(
                "UnknownTaskError", f"unknown task {job.task!r} (registered: {known})"
            )
            await self._dead(delivery, queue, DeadReason.UNKNOWN_TASK, job, error)
            return
        try:
            task.check_arguments(job.args, job.kwargs)
        except TypeError as e:
            error = ErrorInfo("ArgumentsError", f"{task.describe()}: {e}")
            await self._dead(delivery, queue, DeadReason.BAD_ARGS, job, error)
            return
        retries = task.options.retries if job.retries is None else job.retries
        attempt, max_attempts = delivery.attempt, retries + 1
        if attempt > max_attempts + UNSETTLED_DELIVERIES:
            error = ErrorInfo(
                "DeliveriesExhausted",
                f"delivered {attempt} times without an outcome: the worker running it died or "
                "lost its lease on every attempt",
            )
            await self._dead(delivery, queue, DeadReason.CRASHED, job, error)
            return
        ttl = task.options.ttl if job.ttl is None else job.ttl
        if ttl is not None and attempt == 1:
            waited = time.time() - delivery.stored_at
            if waited > ttl:
                error = ErrorInfo("JobExpired", f"waited {waited:.3f}s before starting, ttl {ttl}s")
                await self._dead(delivery, queue, DeadReason.EXPIRED, job, error)
                return
        ctx = Context(
            app=self.app,
            job_id=_job_id(job, delivery),
            task=job.task,
            queue=queue,
            attempt=attempt,
            max_attempts=max_attempts,
            enqueued_at=datetime.fromtimestamp(delivery.stored_at, UTC),
            worker_id=self.worker_id,
        )
        await self._execute(delivery, job, task, ctx, lease_period)

    async def _execute(
        self,
        delivery: Delivery,
        job: JobMessage,
        task: Task[Any, Any],
        ctx: Context,
        lease_period: float,
    ) -> None:
        timeout = task.options.timeout if job.timeout is None else job.timeout
        lease = Lease(delivery, lease_period, time.monotonic())
        self.leases.add(lease)
        started = time.perf_counter()
        thread: asyncio.Future[Any] | None = None
        try:
            async with asyncio.timeout(timeout):
                if task.is_async:
                    await task.fn(ctx, *job.args, **job.kwargs)
                else:
                    thread = _in_thread(task.fn, ctx, job.args, job.kwargs)
                    # Shielded: a timeout or a shutdown stops the wait, not the thread.
                    await asyncio.shield(thread)
        except asyncio.CancelledError:
            # The worker is stopping past its grace period: hand the job straight back.
            await delivery.nak()
            _log_outcome(
                logging.WARNING, ctx, started, "cancelled by shutdown, returned to the queue"
            )
            raise
        except Retry as e:
            await self._failed(delivery, job, task, ctx, started, e, retry_delay=e.delay)
        except Exception as e:
            if (
                timeout is not None
                and isinstance(e, TimeoutError)
                and time.perf_counter() - started >= timeout
            ):
                e = TimeoutError(f"timed out after {timeout}s")
            retryable = not isinstance(e, task.options.no_retry_for)
            await self._failed(delivery, job, task, ctx, started, e, retryable=retryable)
        else:
            await delivery.ack()
            self.stats.processed += 1
            _log_outcome(logging.INFO, ctx, started, "succeeded")
        finally:
            self.leases.discard(lease)
        if thread is not None and not thread.done():
            # A thread cannot be interrupted. The attempt is settled already (it timed out);
            # keep the job's slot until the call returns, so that the worker never runs more
            # task bodies at once than its concurrency, however often runs time out.
            log.warning(
                "job %s task=%s: its thread is still running after the timeout; the worker "
                "keeps its slot until it returns",
                ctx.job_id,
                ctx.task,
            )
            await asyncio.wait([thread])

    async def _failed(
        self,
        delivery: Delivery,
        job: JobMessage,
        task: Task[Any, Any],
        ctx: Context,
        started: float,
        error: BaseException,
        *,
        retryable: bool = True,
        retry_delay: float | None = None,
    ) -> None:
        if retryable and ctx.attempt < ctx.max_attempts:
            delay = task.options.backoff(ctx.attempt) if retry_delay is None else retry_delay
            await delivery.nak(delay)
            self.stats.retried += 1
            _log_outcome(
                logging.INFO, ctx, started, f"failed ({_short(error)}), retrying in {delay:.2f}s"
            )
            return
        await self._dead(delivery, ctx.queue, DeadReason.FAILED, job, _error_info(error))
        _log_outcome(logging.WARNING, ctx, started, f"failed ({_short(error)}), dead-lettered")

    async def _dead(
        self,
        delivery: Delivery,
        queue: str,
        reason: DeadReason,
        job: JobMessage | None,
        error: ErrorInfo,
    ) -> None:
        """Record the job in the dead-letter stream, then remove it from its queue."""
        job_id = _job_id(job, delivery)
        record = DeadLetter(
            id=job_id,
            queue=queue,
            reason=reason,
            attempts=delivery.attempt,
            dead_at=time.time(),
            payload=delivery.data,
            task=job.task if job else None,
            error=error,
            enqueued_at=delivery.stored_at,
            worker=self.worker_id,
            stream_seq=delivery.seq,
        )
        room = self.broker.max_payload - _DEAD_RECORD_OVERHEAD
        if len(delivery.data) * 4 // 3 > room:  # payloads travel base64-encoded
            record.payload = delivery.data[: max(0, room * 3 // 4)]
            record.payload_truncated = True
        try:
            await self.broker.publish_dead(queue, encode(record), f"{job_id}:{delivery.seq}")
        except Exception as e:
            log.error(
                "job %s queue=%s: cannot store its dead letter (%s); it stays queued and comes "
                "back in %ss",
                job_id,
                queue,
                e,
                _DEAD_LETTER_RETRY_S,
            )
            await delivery.nak(_DEAD_LETTER_RETRY_S)
            return
        await delivery.term()
        self.stats.failed += 1
        if reason not in (DeadReason.FAILED,):
            log.warning(
                "job %s queue=%s task=%s dead-lettered: %s: %s",
                job_id,
                queue,
                job.task if job else "?",
                reason.value,
                error.message,
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %s payload: %r", job_id, delivery.data[:2000])


_thread_pool: ThreadPoolExecutor | None = None
_thread_pool_lock = threading.Lock()


def _threads() -> ThreadPoolExecutor:
    """The pool that runs plain `def` tasks, shared by the workers of this process.

    Not the event loop's default executor: that one has ``min(32, cpu_count + 4)`` threads,
    which would cap a worker's concurrency for sync tasks (6 threads on 2 cores) and let
    queued runs time out before they start.
    """
    global _thread_pool
    with _thread_pool_lock:
        if _thread_pool is None:
            _thread_pool = ThreadPoolExecutor(_MAX_THREADS, thread_name_prefix="aioq-task")
        return _thread_pool


def _in_thread(
    fn: Callable[..., Any], ctx: Context, args: list[Any], kwargs: dict[str, Any]
) -> asyncio.Future[Any]:
    """Start ``fn(ctx, *args, **kwargs)`` in a pool thread, with the caller's contextvars."""
    call = functools.partial(contextvars.copy_context().run, fn, ctx, *args, **kwargs)
    future = asyncio.wrap_future(_threads().submit(call))
    # Nobody may await a run that outlived its job (forced shutdown): consume its outcome.
    future.add_done_callback(_consume)
    return future


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _job_id(job: JobMessage | None, delivery: Delivery) -> str:
    if job is not None and job.id:
        return job.id
    return delivery.msg_id or f"seq-{delivery.seq}"


def _error_info(error: BaseException, *, tb: bool = True) -> ErrorInfo:
    text = "".join(traceback.format_exception(error)) if tb else ""
    if len(text) > _MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-_MAX_TRACEBACK_CHARS:]
    return ErrorInfo(type(error).__qualname__, str(error), text)


def _short(error: BaseException) -> str:
    message = str(error)
    if len(message) > 200:
        message = message[:200] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _log_outcome(level: int, ctx: Context, started: float, outcome: str) -> None:
    if log.isEnabledFor(level):
        log.log(
            level,
            "job %s task=%s queue=%s attempt=%d took=%.3fs %s",
            ctx.job_id,
            ctx.task,
            ctx.queue,
            ctx.attempt,
            time.perf_counter() - started,
            outcome,
        )
