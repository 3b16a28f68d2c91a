"""History and replay: keep the messages of succeeded jobs, and enqueue them again later."""

from __future__ import annotations

import builtins
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from aioq.client import ClientApp, publish_many
from aioq.naming import validate_queue
from aioq.priority import DEFAULT_PRIORITY
from aioq.task import PreparedJob
from aioq.wire import JobMessage, encode

if TYPE_CHECKING:
    from aioq.backend import Broker
    from aioq.job import Job
    from aioq.options import QueueOptions
    from aioq.worker.attempt import Attempt

__all__ = ["History", "Kept", "keep_succeeded"]

log = logging.getLogger("aioq.replay")
_decoder = msgspec.json.Decoder(JobMessage)


@dataclass(frozen=True, slots=True)
class Kept:
    """A succeeded job's message as kept in the history of its queue."""

    job_id: str
    #: Unix time the job succeeded (when its message was kept).
    at: float
    message: JobMessage


async def keep_succeeded(broker: Broker, run: Attempt, options: QueueOptions) -> None:
    """Keep a succeeded job's message if its queue keeps a history; nothing otherwise.

    A message that cannot be kept is logged and the job still succeeds: the history serves
    replays, it never decides a job's outcome.
    """
    if not options.history:
        return
    ctx = run.ctx
    try:
        await broker.history.keep(ctx.queue, ctx.job_id, run.delivery.data, options.history)
    except Exception as e:
        log.warning("job %s: its message was not kept for replay: %r", ctx.job_id, e)


class History:
    """The succeeded jobs of queues that keep a history (``app.history``)."""

    def __init__(self, app: ClientApp) -> None:
        self.app = app

    async def list(
        self,
        queue: str,
        *,
        since: float | None = None,
        until: float | None = None,
        task: str | None = None,
    ) -> list[Kept]:
        """Succeeded jobs of `queue` kept in its history, oldest first, optionally filtered.

        Args:
            queue: A queue set up with ``app.queue(queue, history=seconds)``.
            since: Only jobs that succeeded at or after this unix time.
            until: Only jobs that succeeded before this unix time.
            task: Only jobs of this task.
        """
        broker = await self.app.connect()
        found: list[Kept] = []
        async for stored in broker.history.list(validate_queue(queue)):
            at = stored.time or 0.0
            if (since is not None and at < since) or (until is not None and at >= until):
                continue
            try:
                message = _decoder.decode(stored.data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # only valid jobs succeed, so only a foreign writer stores these
            if task is None or message.task == task:
                found.append(Kept(stored.subject.rsplit(".", 1)[-1], at, message))
        return found

    async def replay(
        self,
        queue: str,
        *,
        since: float | None = None,
        until: float | None = None,
        task: str | None = None,
    ) -> builtins.list[Job[Any]]:
        """Enqueue again, as new jobs, the succeeded jobs of `queue` in a window of time.

        Each replayed job gets a new id (the original keeps its record and result) and the
        same task, arguments and options. Only jobs still within the queue's history
        retention can be replayed. Arguments as in `list`.
        """
        kept = await self.list(queue, since=since, until=until, task=task)
        prepared = [_again(queue, entry, self.app.clock.time()) for entry in kept]
        return await publish_many(self.app, prepared)


def _again(queue: str, kept: Kept, now: float) -> PreparedJob:
    job_id = uuid.uuid4().hex
    message = msgspec.structs.replace(kept.message, id=job_id, enqueued_at=now, retry_of=None)
    priority = DEFAULT_PRIORITY if message.priority is None else message.priority
    return PreparedJob(message.task, queue, job_id, encode(message), priority=priority)
