"""Flows: chains (each result passed to the next job) and groups (then a callback).

Built on ``depends_on``: every member after the first waits in the broker for the jobs before
it (`aioq.dependencies`), so a flow survives the restart of any worker, producer or server.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aioq.errors import ConfigError
from aioq.job import Job
from aioq.options import CallOptions, DependencySpec
from aioq.task import PreparedJob, build_job
from aioq.wire import JobRecord

if TYPE_CHECKING:
    from aioq.task import Task

__all__ = ["Flow", "FlowApp", "Signature", "start_chain", "start_group"]


class FlowApp(Protocol):
    """What building a flow needs of an app: publishing prepared jobs."""

    async def publish(self, job: PreparedJob) -> Job[Any]:
        """Publish one prepared job."""
        ...

    async def enqueue_many(self, jobs: Iterable[PreparedJob]) -> list[Job[Any]]:
        """Publish many prepared jobs."""
        ...


@dataclass(frozen=True, slots=True)
class Signature:
    """A call of a task to make later, in a flow: ``task.s(*args, **kwargs)``."""

    task: Task[Any, Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def prepare(self) -> PreparedJob:
        """The job of a first member: its arguments are checked now."""
        return self.task.prepare(*self.args, **self.kwargs)

    def prepare_after(self, depends: DependencySpec) -> PreparedJob:
        """The job of a member that waits: the results it receives go first in its arguments."""
        task = self.task
        call = CallOptions(depends_on=depends.ids)
        job = build_job(
            task.name,
            task.queue,
            list(self.args),
            dict(self.kwargs),
            call,
            now=_now(task),
            priority=task.options.priority,
            group=task.options.group,
        )
        return dataclasses.replace(job, depends=depends)


def _now(task: Task[Any, Any]) -> float:
    return task.app.clock.time()


class Flow:
    """A handle on a chain or a group: its jobs, its outcome and the state of each member.

    Attributes:
        kind: ``chain`` or ``group``.
        jobs: The members, in order (a group's callback not included).
        callback: The group's callback job, if any.
    """

    def __init__(self, kind: str, jobs: list[Job[Any]], callback: Job[Any] | None = None) -> None:
        self.kind = kind
        self.jobs = jobs
        self.callback = callback

    @property
    def id(self) -> str:
        """The id of the job whose outcome is the flow's: the last of a chain, the callback."""
        return (self.callback or self.jobs[-1]).id

    async def result(self, timeout: float | None = 60.0) -> Any:
        """The flow's outcome: a chain's last result, a group's callback result or list of results.

        Raises what `Job.result` raises for the job that failed (a job after it in a chain, or
        a callback, fails with ``dependency_failed``).
        """
        if self.kind == "chain" or self.callback is not None:
            return await (self.callback or self.jobs[-1]).result(timeout)
        async with asyncio.timeout(timeout):
            return list(await asyncio.gather(*(job.result(None) for job in self.jobs)))

    async def status(self) -> list[JobRecord]:
        """The record of every member in order, the callback last."""
        members = [*self.jobs, *([self.callback] if self.callback else [])]
        return [await job.status() for job in members]

    def __repr__(self) -> str:
        return f"<Flow {self.kind} of {len(self.jobs)} id={self.id}>"


async def start_chain(app: FlowApp, signatures: Sequence[Signature]) -> Flow:
    """Enqueue `signatures` as a chain: each job gets the previous result as first argument."""
    if not signatures:
        raise ConfigError("a chain needs at least one task signature (task.s(...))")
    jobs = [await app.publish(signatures[0].prepare())]
    for signature in signatures[1:]:
        spec = DependencySpec((jobs[-1].id,), pass_results="first")
        jobs.append(await app.publish(signature.prepare_after(spec)))
    return Flow("chain", jobs)


async def start_group(
    app: FlowApp, signatures: Sequence[Signature], callback: Signature | None = None
) -> Flow:
    """Enqueue `signatures` to run in parallel, then `callback` with the list of results."""
    if not signatures:
        raise ConfigError("a group needs at least one task signature (task.s(...))")
    jobs = await app.enqueue_many([signature.prepare() for signature in signatures])
    done = None
    if callback is not None:
        spec = DependencySpec(tuple(job.id for job in jobs), pass_results="list")
        done = await app.publish(callback.prepare_after(spec))
    return Flow("group", jobs, done)
