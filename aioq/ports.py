"""What the role modules need of an app, as narrow Protocols (`Aarq` satisfies each).

A job handle, the dead-letter API and the scheduler depend on these, never on `Aarq`
itself, so none of them imports the app module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aioq.clock import Clock
    from aioq.job import Job
    from aioq.repeatable import Repeatable
    from aioq.task import PreparedJob
    from aioq.transport import Broker

__all__ = ["BrokerAccess", "DeadLetterApp", "SchedulingApp"]


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
