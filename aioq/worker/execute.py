"""Running one delivered job: decode, checks, the task itself, then ack, retry or dead letter."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from aioq.backend import Broker, Delivery
from aioq.context import Context
from aioq.errors import Retry
from aioq.logs import CURRENT_JOB, job_fields
from aioq.replay import keep_succeeded
from aioq.task import Task
from aioq.unique import release
from aioq.wire import (
    DeadReason,
    ErrorInfo,
    JobMessage,
    JobRecord,
    JobState,
    decode_job,
    encode,
)
from aioq.worker.attempt import (
    Attempt,
    Previous,
    Progress,
    Stats,
    dead_letter,
    error_info,
    job_id_of,
    log_outcome,
    ran_twice,
    short,
)
from aioq.worker.leases import Lease
from aioq.worker.observe import SILENT, UNKNOWN_TASK, AttemptTracer, JobObserver, Outcome
from aioq.worker.outcome import (
    RECORD_ROOM,
    Reporter,
    ResultEncodingError,
    encode_result,
    error_record,
)
from aioq.worker.threads import run_in_thread

if TYPE_CHECKING:
    from aioq.ports import WorkerApp

__all__ = ["STOPPED_ERROR", "UNSETTLED_DELIVERIES", "Executor", "Lease", "Previous", "Stats"]

log = logging.getLogger("aioq.worker")

# Room left in a dead-letter record for everything but the payload.
_DEAD_RECORD_OVERHEAD: Final = 24_000
# Deliveries allowed beyond `retries + 1` that ended without an outcome (the worker died, or a
# forced stop handed the job back) before the job is declared crashed instead of run again.
UNSETTLED_DELIVERIES: Final = 2
# When the dead-letter record cannot be stored, the job comes back after this long.
_DEAD_LETTER_RETRY_S: Final = 5.0
# Aborts remembered for jobs that were fetched but had not started when the abort came.
_REMEMBERED_ABORTS: Final = 1024

_DEAD_STATE: Final = {DeadReason.EXPIRED: JobState.EXPIRED}
#: The error type in the record of a job a stopping worker cancelled and handed back.
STOPPED_ERROR: Final = "WorkerStopped"
_record_decoder: Final = msgspec.json.Decoder(JobRecord)
_REASON_OUTCOME: Final = {
    DeadReason.FAILED: Outcome.FAILED,
    DeadReason.EXPIRED: Outcome.EXPIRED,
    DeadReason.CRASHED: Outcome.CRASHED,
    DeadReason.BAD_PAYLOAD: Outcome.BAD_INPUT,
    DeadReason.UNKNOWN_TASK: Outcome.BAD_INPUT,
    DeadReason.BAD_ARGS: Outcome.BAD_INPUT,
}


class _Unrunnable(Exception):
    """A delivered job that cannot run: it goes to the dead letters for `reason`."""

    def __init__(self, reason: DeadReason, job: JobMessage | None, error: ErrorInfo) -> None:
        self.reason, self.job, self.error = reason, job, error


class Executor:
    """Runs deliveries of one worker and settles each exactly once."""

    def __init__(
        self,
        app: WorkerApp,
        broker: Broker,
        worker_id: str,
        observer: JobObserver = SILENT,
        tracer: AttemptTracer | None = None,
    ) -> None:
        self.app = app
        self.observer = observer
        self.tracer = tracer
        self.tasks = app.tasks
        self.broker = broker
        # Job times (store, start, retry, dead-letter) and the ttl live on the broker's clock.
        self.clock = broker.clock
        self.worker_id = worker_id
        self.stats = Stats()
        self.leases: set[Lease] = set()
        self.reporter = Reporter(broker, worker_id, app.keep_result)
        self._running: dict[str, tuple[asyncio.Task[Any], str]] = {}
        self._aborted: OrderedDict[str, None] = OrderedDict()

    async def run(
        self,
        delivery: Delivery,
        queue: str,
        lease_period: float,
        previous: Previous | None = None,
    ) -> None:
        """Handle one delivery; never raises except `asyncio.CancelledError`.

        `previous` is what `previous()` found for a redelivered job; a job whose previous
        delivery left no outcome runs alone, its running record stored before it starts.
        """
        try:
            await self._run(delivery, queue, lease_period, previous)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug or a broker failure while settling: the job comes back after its lease.
            log.exception(
                "job seq=%s queue=%s: unexpected error while handling it", delivery.seq, queue
            )

    async def previous(self, delivery: Delivery) -> Previous:
        """What the job's record says about the delivery before `delivery`."""
        try:
            job_id = job_id_of(decode_job(delivery.data), delivery)
            raw = await self.broker.records.get(job_id)
            record = _record_decoder.decode(raw) if raw else None
        except Exception:  # an undecodable job is dead-lettered when it runs
            return Previous.UNKNOWN
        if record is None or record.seq not in (None, delivery.seq):
            return Previous.UNKNOWN  # none, or the record of an earlier enqueue of this id
        # Deliveries that the job's group limits put back are not attempts.
        delivery.attempt = delivery.delivered - record.deferred
        if record.attempts >= delivery.attempt:
            return Previous.SUPERSEDED
        if record.attempts != delivery.attempt - 1:
            return Previous.UNKNOWN
        if record.state is JobState.RUNNING:
            return Previous.STARTED
        if record.state is JobState.QUEUED and not record.deferred:
            return Previous.UNKNOWN
        return Previous.SETTLED

    def running_jobs(self) -> list[tuple[str, str]]:
        """(job id, task) of each job running now; safe to call from another thread."""
        for _ in range(3):
            try:
                return [(job_id, name) for job_id, (_, name) in list(self._running.items())]
            except RuntimeError:  # changed size while copied
                continue
        return []

    async def abort(self, job_id: str) -> None:
        """Cancel job `job_id` if it runs here, and refuse to start it if it comes later."""
        self._aborted[job_id] = None
        while len(self._aborted) > _REMEMBERED_ABORTS:
            self._aborted.popitem(last=False)
        running = self._running.get(job_id)
        if running is not None:
            running[0].cancel()

    async def _run(
        self, delivery: Delivery, queue: str, lease_period: float, previous: Previous | None
    ) -> None:
        try:
            job, task = self._decode(delivery)
        except _Unrunnable as e:
            await self._dead(delivery, queue, e.reason, e.job, e.error)
            return
        if delivery.delivered > 1 and previous is None:
            previous = await self.previous(delivery)
        # Call over task (`aioq.options.resolve`), written out: this runs once per job.
        retries = task.options.retries if job.retries is None else job.retries
        attempt, max_attempts = delivery.attempt, retries + 1
        if previous is Previous.SUPERSEDED:
            # Not settled either: the message belongs to the later delivery.
            log.warning(
                "job %s task=%s: delivery %d came after a later one had recorded the job; "
                "not running it",
                job_id_of(job, delivery),
                job.task,
                attempt,
            )
            return
        # Only a job that started on its previous delivery and died there can be the one
        # that crashes its worker: a job fetched alongside it never ran on that delivery.
        if attempt > max_attempts + UNSETTLED_DELIVERIES and previous is Previous.STARTED:
            message = (
                f"delivered {attempt} times without an outcome: the worker running it died or "
                "lost its lease on every attempt"
            )
            await self._dead(
                delivery, queue, DeadReason.CRASHED, job, ErrorInfo("DeliveriesExhausted", message)
            )
            return
        ttl = task.options.ttl if job.ttl is None else job.ttl
        if ttl is not None and attempt == 1:
            waited = self.clock.time() - delivery.stored_at
            if waited > ttl:
                error = ErrorInfo("JobExpired", f"waited {waited:.3f}s before starting, ttl {ttl}s")
                await self._dead(delivery, queue, DeadReason.EXPIRED, job, error)
                return
        run = self._attempt(delivery, job, task, queue, max_attempts, lease_period)
        if run.ctx.job_id in self._aborted:
            await self._abort_settle(run)
            return
        alone = previous in (Previous.STARTED, Previous.UNKNOWN)
        running_record = await self.reporter.started(
            run.record, lease_lapses=2 * lease_period, store_now=alone
        )
        try:
            await self._execute(run, running_record)
        finally:
            running_record.cancel()

    def _decode(self, delivery: Delivery) -> tuple[JobMessage, Task[Any, Any]]:
        """The job and its task; raises `_Unrunnable` when the job cannot run.

        Not a coroutine: it runs once per job, and only a job that cannot run has to wait
        (for its dead letter).
        """
        try:
            job = decode_job(delivery.data)
        except Exception as e:  # msgspec errors, and RecursionError on absurd nesting
            raise _Unrunnable(DeadReason.BAD_PAYLOAD, None, error_info(e, tb=False)) from None
        task = self.tasks.get(job.task)
        if task is None:
            known = ", ".join(sorted(self.tasks)) or "none"
            message = f"unknown task {job.task!r} (registered: {known})"
            raise _Unrunnable(DeadReason.UNKNOWN_TASK, job, ErrorInfo("UnknownTaskError", message))
        try:
            job.args, job.kwargs = task.arguments_from_json(job.args, job.kwargs)
        except TypeError as e:
            error = ErrorInfo("ArgumentsError", f"{task.describe()}: {e}")
            raise _Unrunnable(DeadReason.BAD_ARGS, job, error) from None
        return job, task

    def _attempt(
        self,
        delivery: Delivery,
        job: JobMessage,
        task: Task[Any, Any],
        queue: str,
        max_attempts: int,
        lease_period: float,
    ) -> Attempt:
        """The attempt about to run `delivery`: its context, running record and lease."""
        ctx = Context(
            app=self.app,
            job_id=job_id_of(job, delivery),
            task=job.task,
            queue=queue,
            attempt=delivery.attempt,
            max_attempts=max_attempts,
            enqueued_at=datetime.fromtimestamp(delivery.stored_at, UTC),
            worker_id=self.worker_id,
        )
        record = JobRecord(
            id=ctx.job_id,
            state=JobState.RUNNING,
            task=job.task,
            queue=queue,
            attempts=delivery.attempt,
            enqueued_at=delivery.stored_at,
            started_at=self.clock.time(),
            retry_of=job.retry_of,
            seq=delivery.seq,
            depends_on=job.depends_on,
            deferred=delivery.delivered - delivery.attempt,
            priority=job.priority,
            group=job.group,
            unique_key=job.unique_key,
        )
        lease = Lease.of(delivery, lease_period)
        timeout = task.options.timeout if job.timeout is None else job.timeout
        return Attempt(delivery, job, task, ctx, record, lease, timeout)

    async def _execute(self, run: Attempt, running_record: asyncio.Handle) -> None:
        ctx, task, job, lease = run.ctx, run.task, run.job, run.lease
        timeout = run.timeout
        self.leases.add(lease)
        me = asyncio.current_task()
        assert me is not None
        self._running[ctx.job_id] = (me, ctx.task)
        progress = ctx._on_progress = Progress(self.reporter, run.record, lease)
        self._begin(run)
        thread: asyncio.Future[Any] | None = None
        try:
            try:
                async with asyncio.timeout(timeout):
                    for before in self.app.before_job_hooks:
                        await before(ctx)
                    if task.is_async:
                        value = await task.fn(ctx, *job.args, **job.kwargs)
                    else:
                        thread = run_in_thread(task.fn, ctx, *job.args, **job.kwargs)
                        # Shielded: a timeout or a shutdown stops the wait, not the thread.
                        value = await asyncio.shield(thread)
            finally:
                running_record.cancel()  # the outcome's record follows at once
                progress.close()
                ctx._on_progress = None
            run.record.result = encode_result(value, self.broker.max_payload - RECORD_ROOM)
        except asyncio.CancelledError:
            if ctx.job_id not in self._aborted:
                # The worker is stopping past its grace period: hand the job straight back.
                await self._handed_back(run)
                raise
            me.uncancel()
            await self._abort_settle(run)
        except Retry as e:
            if not await self._superseded(run):
                await self._failed(run, e, retry_delay=e.delay)
        except Exception as e:
            deadline_passed = timeout is not None and time.perf_counter() - run.started >= timeout
            if deadline_passed and isinstance(e, TimeoutError):
                e = TimeoutError(f"timed out after {timeout}s")
            # A result that cannot be stored is final: running the job again redoes its work.
            retryable = not isinstance(e, (*task.options.no_retry_for, ResultEncodingError))
            if not await self._superseded(run):
                await self._failed(run, e, retryable=retryable)
        else:
            await self._succeeded(run)
        finally:
            self._left(run)
        await self._after_hooks(ctx, run.record)
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

    def _begin(self, run: Attempt) -> None:
        """Tell the observers that `run` starts; start its trace span."""
        ctx, delivery = run.ctx, run.delivery
        if self.tracer is not None:
            run.span = self.tracer.begin(
                delivery.headers,
                task=ctx.task,
                queue=ctx.queue,
                job_id=ctx.job_id,
                attempt=ctx.attempt,
            )
        CURRENT_JOB.set(ctx)  # in the job's own asyncio task: the task's log lines name it
        waited = max(0.0, self.clock.time() - delivery.stored_at) if ctx.attempt == 1 else None
        self.observer.started(ctx.queue, ctx.task, waited)
        run.started = time.perf_counter()

    def _left(self, run: Attempt) -> None:
        """Forget `run`, which ended (with an outcome, or handed back without one)."""
        job_id = run.ctx.job_id
        self.leases.discard(run.lease)
        self._running.pop(job_id, None)
        self.reporter.drop_guard(job_id)
        self.observer.stopped(run.ctx.queue)
        if run.span is not None:
            run.span.end(None)  # a no-op once the outcome ended it

    def _settled(self, run: Attempt, outcome: Outcome, error: BaseException | None = None) -> None:
        """Tell the observers how `run` ended."""
        duration = time.perf_counter() - run.started if run.started else None
        self.observer.finished(run.ctx.queue, run.ctx.task, outcome, duration)
        if run.span is not None:
            run.span.end(outcome, error)

    async def _succeeded(self, run: Attempt) -> None:
        if await self._superseded(run):
            return
        record = run.record
        record.state, record.finished_at = JobState.SUCCEEDED, self.clock.time()
        # Kept before the outcome is visible: a client that saw the result finds it kept.
        await keep_succeeded(self.broker, run, self.app.queue(run.ctx.queue))
        if not await self.reporter.report(record, duration=time.perf_counter() - run.started):
            ran_twice(run.ctx, None)
            return
        await run.delivery.ack()
        if run.job.unique_key is not None:
            await release(self.broker, run.job, record.id)
        self.stats.processed += 1
        self._settled(run, Outcome.SUCCEEDED)
        log_outcome(logging.INFO, run, "succeeded", Outcome.SUCCEEDED)

    async def _handed_back(self, run: Attempt) -> None:
        """Return a job cancelled by the worker's stop to its queue, its record saying so.

        The record is the attempt's outcome: the next worker sees that this delivery ended
        (`Previous.SETTLED`) and runs the job at once, instead of setting it aside as a
        possible crash.
        """
        record = run.record
        record.state = JobState.RETRYING
        record.error = ErrorInfo(STOPPED_ERROR, "cancelled by the worker's stop; it runs again")
        try:
            superseded = not await self.reporter.report(record)
        except Exception as e:  # the job still goes back; it is only run more carefully
            log.debug("job %s: cannot record its hand-back: %s", run.ctx.job_id, e)
            superseded = False
        if not superseded:  # else the message belongs to a newer attempt
            await run.delivery.nak()
        log_outcome(
            logging.WARNING, run, "cancelled by shutdown, returned to the queue", "returned"
        )

    async def _superseded(self, run: Attempt) -> bool:
        """Whether a newer attempt recorded the job while this one's lease had lapsed.

        Its outcome is then dropped: neither stored over the newer record nor settled, since
        the message belongs to the newer attempt. Otherwise the outcome's record is written
        with compare-and-set on the record's revision (`Reporter.guard`).
        """
        if not run.lease.check(time.monotonic()):
            return False
        ctx = run.ctx
        newer = await self.reporter.guard(ctx.job_id, ctx.attempt, run.delivery.seq)
        if newer is None:
            return False
        ran_twice(ctx, newer)
        return True

    async def _after_hooks(self, ctx: Context, record: JobRecord) -> None:
        for after in self.app.after_job_hooks:
            try:
                await after(ctx, record)
            except Exception:
                log.exception("job %s: after_job hook %r failed", ctx.job_id, after)

    async def _abort_settle(self, run: Attempt) -> None:
        record = run.record
        record.state, record.finished_at = JobState.ABORTED, self.clock.time()
        await self.reporter.report(record, duration=time.perf_counter() - run.started)
        await run.delivery.term()
        await release(self.broker, run.job, record.id)
        self._settled(run, Outcome.ABORTED)
        log_outcome(logging.WARNING, run, "aborted", Outcome.ABORTED)

    async def _failed(
        self,
        run: Attempt,
        error: BaseException,
        *,
        retryable: bool = True,
        retry_delay: float | None = None,
    ) -> None:
        ctx, record = run.ctx, run.record
        info = error_info(error)
        duration = time.perf_counter() - run.started
        if retryable and ctx.attempt < ctx.max_attempts:
            delay = run.task.options.backoff(ctx.attempt) if retry_delay is None else retry_delay
            record.state, record.error, record.retry_at = (
                JobState.RETRYING,
                info,
                self.clock.time() + delay,
            )
            if not await self.reporter.report(record, duration=duration, delay=delay):
                ran_twice(ctx, None)
                return
            await run.delivery.nak(delay)
            self.stats.retried += 1
            self._settled(run, Outcome.RETRIED, error)
            log_outcome(
                logging.INFO,
                run,
                f"failed ({short(error)}), retrying in {delay:.2f}s",
                Outcome.RETRIED,
            )
            return
        await self._dead(run.delivery, ctx.queue, DeadReason.FAILED, run.job, info, record=record)
        self._settled(run, Outcome.FAILED, error)
        log_outcome(logging.WARNING, run, f"failed ({short(error)}), dead-lettered", Outcome.FAILED)

    async def _dead(
        self,
        delivery: Delivery,
        queue: str,
        reason: DeadReason,
        job: JobMessage | None,
        error: ErrorInfo,
        *,
        record: JobRecord | None = None,
    ) -> None:
        """Record the job in the dead-letter stream, then remove it from its queue."""
        job_id = job_id_of(job, delivery)
        dead = dead_letter(
            delivery, job_id, queue, reason, job, error, self.clock.time(), self.worker_id
        )
        room = self.broker.max_payload - _DEAD_RECORD_OVERHEAD
        if len(delivery.data) * 4 // 3 > room:  # payloads travel base64-encoded
            dead.payload = delivery.data[: max(0, room * 3 // 4)]
            dead.payload_truncated = True
        try:
            await self.broker.dead.publish(queue, job_id, encode(dead), f"{job_id}:{delivery.seq}")
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
        if record is None:
            record = JobRecord(
                id=job_id,
                state=JobState.FAILED,
                task=dead.task,
                queue=queue,
                attempts=delivery.attempt,
                enqueued_at=delivery.stored_at,
            )
        await self.reporter.report(
            error_record(record, _DEAD_STATE.get(reason, JobState.FAILED), error, self.clock.time())
        )
        await delivery.term()
        await release(self.broker, job, job_id)
        self.stats.failed += 1
        if reason is not DeadReason.FAILED:  # (a failed attempt is told by `_settled`)
            outcome = _REASON_OUTCOME[reason]
            label = dead.task if dead.task is not None and dead.task in self.tasks else UNKNOWN_TASK
            self.observer.finished(queue, label, outcome, None)
            log.warning(
                "job %s queue=%s task=%s dead-lettered: %s: %s",
                job_id,
                queue,
                dead.task or "?",
                reason.value,
                error.message,
                extra=job_fields(
                    job_id, dead.task, queue, delivery.attempt, self.worker_id, outcome=outcome
                ),
            )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %s payload: %r", job_id, delivery.data[:2000])
