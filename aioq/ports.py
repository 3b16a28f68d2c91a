"""What the role modules need of an app, as narrow Protocols (`Aarq` satisfies each).

A job handle, the dead-letter API, the scheduler and the worker depend on these, never on
`Aarq` itself, so none of them imports the app module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aioq._connections import WorkerUsers
    from aioq.backend import Broker
    from aioq.clock import Clock
    from aioq.context import AfterJobHook, BeforeJobHook, Hook, State
    from aioq.groups import GroupLimits
    from aioq.job import Job
    from aioq.options import QueueOptions
    from aioq.repeatable import Repeatable
    from aioq.task import PreparedJob, Task

__all__ = ["BrokerAccess", "DeadLetterApp", "SchedulingApp", "WorkerApp"]


class BrokerAccess(Protocol):
    """An app's broker (connected on first use) and the clock of its job semantics."""

    @property
    def clock(self) -> Clock:
        """The broker's clock."""
        ...

    async def connect(self) -> Broker:
        """The connected broker."""
        ...


class _TypedTask(Protocol):
    @property
    def result_type(self) -> Any:
        """The type the task's result decodes to."""
        ...


class DeadLetterApp(BrokerAccess, Protocol):
    """What the dead-letter API needs: the broker, and the result types of the tasks."""

    @property
    def tasks(self) -> Mapping[str, _TypedTask]:
        """Registered tasks by name."""
        ...


class SchedulingApp(BrokerAccess, Protocol):
    """What the scheduler needs: the broker, the repeatables, and a way to publish a job."""

    @property
    def repeatables(self) -> Mapping[str, Repeatable]:
        """Registered repeatables by name."""
        ...

    async def publish(self, job: PreparedJob) -> Job[Any]:
        """Publish a prepared job."""
        ...


class WorkerApp(SchedulingApp, Protocol):
    """What a worker needs: tasks, queue settings, hooks, state and the connection's users."""

    @property
    def tasks(self) -> Mapping[str, Task[Any, Any]]:
        """Registered tasks by name."""
        ...

    @property
    def keep_result(self) -> float:
        """Seconds job records are kept (0: none)."""
        ...

    @property
    def state(self) -> State:
        """The app's shared state, handed to hooks and tasks."""
        ...

    @property
    def startup_hooks(self) -> Sequence[Hook]:
        """Run once a worker connected, before it takes jobs."""
        ...

    @property
    def shutdown_hooks(self) -> Sequence[Hook]:
        """Run once a worker stopped taking jobs."""
        ...

    @property
    def before_job_hooks(self) -> Sequence[BeforeJobHook]:
        """Run before each attempt."""
        ...

    @property
    def after_job_hooks(self) -> Sequence[AfterJobHook]:
        """Run after each attempt is settled."""
        ...

    @property
    def connected(self) -> bool:
        """True once the app holds a connection in the running loop."""
        ...

    @property
    def worker_users(self) -> WorkerUsers:
        """The workers running on the app's connections."""
        ...

    def queue(self, name: str) -> QueueOptions:
        """The consumer settings of queue `name`."""
        ...

    @property
    def group_limits(self) -> GroupLimits:
        """The limits of groups of jobs (``app.group_limit``)."""
        ...

    async def close(self) -> None:
        """Close the app's connections."""
