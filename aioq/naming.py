"""Every NATS name aioq uses: streams, subjects, consumers and KV buckets.

All names derive from the app's `prefix` (default ``aioq``) so that several apps, or several
test runs, can share one server without seeing each other.
"""

from __future__ import annotations

import re
from typing import Final

from aioq.errors import ConfigError
from aioq.priority import DEFAULT_PRIORITY

__all__ = [
    "JOB_ID_PATTERN",
    "Names",
    "validate_inbox_prefix",
    "validate_job_id",
    "validate_queue",
    "validate_task_name",
]

_PREFIX_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_QUEUE_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INBOX_RE: Final = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_TASK_RE: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
# Job ids are NATS subject tokens and KV keys: both charsets allow these.
JOB_ID_PATTERN: Final = r"^[A-Za-z0-9_=/-]{1,128}$"
_JOB_ID_RE: Final = re.compile(JOB_ID_PATTERN)


def validate_queue(queue: str) -> str:
    """Return `queue` if it is a valid queue name, else raise `ConfigError`."""
    if not isinstance(queue, str) or not _QUEUE_RE.match(queue):
        raise ConfigError(
            f"invalid queue name {queue!r}: use 1-64 letters, digits, '_' or '-' "
            "(no dots, spaces or wildcards, since the name becomes a NATS subject token)"
        )
    return queue


def validate_inbox_prefix(prefix: str) -> str:
    """Return `prefix` if it can prefix reply subjects (no wildcards), else raise `ConfigError`."""
    if not isinstance(prefix, str) or not _INBOX_RE.match(prefix):
        raise ConfigError(
            f"invalid inbox prefix {prefix!r}: use dot-separated tokens of letters, digits, "
            "'_' or '-' (e.g. _INBOX_worker), no wildcards"
        )
    return prefix


def validate_task_name(name: str) -> str:
    """Return `name` if it is a valid task name, else raise `ConfigError`."""
    if not isinstance(name, str) or not _TASK_RE.match(name):
        raise ConfigError(
            f"invalid task name {name!r}: start with a letter or '_', then up to 127 letters, "
            "digits or '_.:-'"
        )
    return name


def validate_job_id(job_id: str) -> str:
    """Return `job_id` if it is a valid job id, else raise `ConfigError`."""
    if not isinstance(job_id, str) or not _JOB_ID_RE.match(job_id):
        raise ConfigError(
            f"invalid job id {job_id!r}: use 1-128 letters, digits or '_=/-' "
            "(the id becomes a NATS subject token and a KV key)"
        )
    return job_id


class Names:
    """The NATS names of one app prefix."""

    __slots__ = ("dead_stream", "jobs_stream", "prefix", "results_bucket", "workers_bucket")

    def __init__(self, prefix: str = "aioq") -> None:
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise ConfigError(f"invalid prefix {prefix!r}: use 1-32 letters, digits, '_' or '-'")
        self.prefix = prefix
        stem = prefix.upper().replace("-", "_")
        self.jobs_stream = f"{stem}_JOBS"
        self.dead_stream = f"{stem}_DEAD"
        self.workers_bucket = f"{prefix}-workers"
        self.results_bucket = f"{prefix}-results"

    def job_subject(self, queue: str) -> str:
        """Subject of the jobs of `queue`: ``<prefix>.jobs.<queue>``.

        Every job of a queue is published on this one subject. A subject per job would let
        the server find a job by its id, but every fetch from a queue would then cost the
        server time growing with the number of stored jobs (benchmarks/RESULTS.md).
        """
        return f"{self.prefix}.jobs.{queue}"

    def is_job_subject(self, subject: str, queue: str) -> bool:
        """Whether `subject` holds jobs of `queue`: its own, or one of a priority level."""
        bare = self.job_subject(queue)
        if subject == bare:
            return True
        if not subject.startswith(bare + "."):
            return False
        rest = subject[len(bare) + 1 :]
        return "." not in rest or self.level_of(subject, queue) is not None

    def priority_subject(self, queue: str, level: int) -> str:
        """Subject of the jobs of `queue` at priority `level` (not the default one).

        ``<prefix>.jobs.<queue>.p.<level>``: two tokens, so the queue's own consumer (which
        takes ``<queue>`` and ``<queue>.*``) never overlaps a level's consumer.
        """
        return f"{self.prefix}.jobs.{queue}.p.{level}"

    def priority_wildcard(self, queue: str) -> str:
        """Subjects of every priority level of `queue`."""
        return f"{self.prefix}.jobs.{queue}.p.*"

    def level_of(self, subject: str, queue: str) -> int | None:
        """The priority level of a subject of `queue`'s levels, or None for another subject."""
        stem = f"{self.prefix}.jobs.{queue}.p."
        level = subject[len(stem) :] if subject.startswith(stem) else ""
        return int(level) if len(level) == 1 and level.isdigit() else None

    def publish_subject(self, queue: str, level: int) -> str:
        """Where a job of `level` is published: the queue's own subject for the default level."""
        return (
            self.job_subject(queue)
            if level == DEFAULT_PRIORITY
            else self.priority_subject(queue, level)
        )

    def job_filters(self, queue: str) -> list[str]:
        """Subjects the consumer of `queue` takes jobs from."""
        return [f"{self.prefix}.jobs.{queue}", f"{self.prefix}.jobs.{queue}.*"]

    def dead_subject(self, queue: str, job_id: str = "*") -> str:
        """Subject of a dead letter of `queue` (all of them with the default ``*``)."""
        return f"{self.prefix}.dead.{queue}.{job_id}"

    @property
    def history_stream(self) -> str:
        """Stream keeping the messages of succeeded jobs, of queues whose history is on."""
        return f"{self.jobs_stream.removesuffix('_JOBS')}_HISTORY"

    def history_subject(self, queue: str, job_id: str = "*") -> str:
        """Subject of a kept message: ``<prefix>.history.<queue>.<job id>``."""
        return f"{self.prefix}.history.{queue}.{job_id}"

    def event_subject(self, queue: str = "*", kind: str = "*") -> str:
        """Subject of lifecycle events (``*`` matches every queue or kind)."""
        return f"{self.prefix}.events.{queue}.{kind}"

    def abort_subject(self, job_id: str = "*") -> str:
        """Subject on which workers hear that a job is aborted."""
        return f"{self.prefix}.control.abort.{job_id}"

    def consumer(self, queue: str, level: int | None = None) -> str:
        """Durable pull consumer shared by every worker of `queue` (of a priority `level`).

        ``@`` cannot appear in a queue name, so a level's consumer ``<queue>@p<level>``
        never takes the name of another queue's.
        """
        return queue if level is None else f"{queue}@p{level}"

    def level_consumer(self, name: str) -> tuple[str, int] | None:
        """The queue and level of a priority level's consumer name; None for other names."""
        queue, mark, level = name.rpartition("@p")
        if not mark or len(level) != 1 or not level.isdigit() or not _QUEUE_RE.match(queue):
            return None
        return queue, int(level)

    def sched_subject(self, queue: str = "*", job_id: str = "*") -> str:
        """Subject of a delayed job held until its time: ``<prefix>.sched.<queue>.<job id>``.

        It lives in the jobs stream, outside every queue consumer's filter; the scheduler
        moves it to `job_subject` when it is due (``*`` matches every queue or job).
        """
        return f"{self.prefix}.sched.{queue}.{job_id}"

    @property
    def sched_wildcard(self) -> str:
        """Subjects of delayed jobs in the jobs stream."""
        return f"{self.prefix}.sched.>"

    @property
    def scheduler_consumer(self) -> str:
        """Durable consumer on the held jobs, shared by every scheduler.

        ``@`` cannot appear in a queue name, so no queue's consumer can take this name.
        """
        return "@scheduler"

    @property
    def schedules_bucket(self) -> str:
        """KV bucket of the last tick fired per repeatable job."""
        return f"{self.prefix}-schedules"

    @property
    def limits_bucket(self) -> str:
        """KV bucket of the per-queue rate limits shared by every worker."""
        return f"{self.prefix}-limits"

    @property
    def waiting_bucket(self) -> str:
        """KV bucket of the jobs waiting for their dependencies."""
        return f"{self.prefix}-waiting"

    @property
    def unique_bucket(self) -> str:
        """KV bucket of the unique keys held by queued and running jobs."""
        return f"{self.prefix}-unique"

    @property
    def jobs_wildcard(self) -> str:
        """Subjects of the jobs stream."""
        return f"{self.prefix}.jobs.>"

    @property
    def dead_wildcard(self) -> str:
        """Subjects of the dead-letter stream."""
        return f"{self.prefix}.dead.>"
