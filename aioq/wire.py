"""The JSON that aioq puts on the wire; these msgspec structs are the schema.

`docs/protocol.md` documents every field, and a test keeps it in sync with `json_schemas()`.
"""

from __future__ import annotations

import enum
import inspect
import json
from typing import Annotated, Any, Final

import msgspec

from aioq.groups import GROUP_MAX_LENGTH, GROUP_PATTERN
from aioq.naming import JOB_ID_PATTERN

__all__ = [
    "TERMINAL_STATES",
    "DeadLetter",
    "DeadReason",
    "ErrorInfo",
    "Event",
    "EventKind",
    "JobMessage",
    "JobRecord",
    "JobState",
    "UniqueHolder",
    "WaitingJob",
    "WorkerInfo",
    "decode_job",
    "encode",
    "json_schemas",
]

_Seconds = Annotated[float, msgspec.Meta(ge=0)]


class JobMessage(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One job, as published on ``<prefix>.jobs.<queue>`` (or ``<prefix>.jobs.<queue>.p.<level>``).

    Only `task` is required. Unknown fields are rejected so that a typo in a hand-written
    job (``kwarg`` for ``kwargs``) is dead-lettered with a clear reason instead of running wrong.
    """

    task: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    args: list[Any] = msgspec.field(default_factory=list)
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    id: Annotated[str, msgspec.Meta(pattern=JOB_ID_PATTERN)] | None = None
    enqueued_at: float | None = None
    ttl: _Seconds | None = None
    timeout: _Seconds | None = None
    retries: Annotated[int, msgspec.Meta(ge=0)] | None = None
    retry_of: int | None = None
    #: Ids of the jobs it waited for (informational: the waiting is done before it is queued).
    depends_on: list[Annotated[str, msgspec.Meta(pattern=JOB_ID_PATTERN)]] | None = None
    #: Key in ``<prefix>-unique`` that this job holds; the worker frees it when the job ends.
    unique_key: Annotated[str, msgspec.Meta(pattern=JOB_ID_PATTERN)] | None = None
    #: Priority level, 0 (lowest) to 9 (highest); absent means 5. Kept by retries of the job.
    priority: Annotated[int, msgspec.Meta(ge=0, le=9)] | None = None
    #: The group (tenant, API key) whose limits the job's start obeys (``app.group_limit``).
    group: (
        Annotated[str, msgspec.Meta(pattern=GROUP_PATTERN, max_length=GROUP_MAX_LENGTH)] | None
    ) = None


class UniqueHolder(msgspec.Struct, omit_defaults=True):
    """The job holding a unique key: the value of its key in ``<prefix>-unique``."""

    id: str
    #: Unix time after which the key is free even if the job has not ended.
    expires_at: float
    claimed_at: float
    queue: str | None = None
    task: str | None = None
    #: The key as the producer gave it (the KV key is its digest).
    key: str | None = None


class WaitingJob(msgspec.Struct, omit_defaults=True):
    """A job held until its dependencies succeed: its key's value in ``<prefix>-waiting``."""

    id: str
    queue: str
    task: str
    #: The job message, published to its queue once the dependencies succeeded.
    payload: bytes
    depends_on: list[str]
    created_at: float
    #: ``dead``: dead-letter the job if a dependency fails; ``run``: run it anyway.
    on_failure: str = "dead"
    #: ``first``: the dependency's result goes first in the job's arguments (a chain);
    #: ``list``: the list of their results does (a group's callback).
    pass_results: str | None = None


class DeadReason(enum.StrEnum):
    """Why a job ended in the dead-letter stream."""

    #: The task raised on its last allowed attempt (or raised a no-retry exception).
    FAILED = "failed"
    #: The job waited longer than its `ttl` before it could start.
    EXPIRED = "expired"
    #: The payload is not valid aioq job JSON.
    BAD_PAYLOAD = "bad_payload"
    #: No task of that name is registered on the worker's app.
    UNKNOWN_TASK = "unknown_task"
    #: The arguments do not bind to the task's signature or convert to its annotated types.
    BAD_ARGS = "bad_args"
    #: Deliveries ran out without an outcome: the worker died or lost the job each time.
    CRASHED = "crashed"
    #: A job it depended on failed, expired, was aborted or is gone (``depends_on``).
    DEPENDENCY_FAILED = "dependency_failed"


class ErrorInfo(msgspec.Struct, frozen=True):
    """An exception raised by a task, as text."""

    type: str
    message: str
    traceback: str = ""


class DeadLetter(msgspec.Struct, omit_defaults=True):
    """A job that will not run again, published on ``<prefix>.dead.<queue>``."""

    id: str
    queue: str
    reason: DeadReason
    attempts: int
    dead_at: float
    payload: bytes
    task: str | None = None
    error: ErrorInfo | None = None
    enqueued_at: float | None = None
    worker: str | None = None
    stream_seq: int | None = None
    payload_truncated: bool = False


class WorkerInfo(msgspec.Struct):
    """A worker's heartbeat, the value of its key in the ``<prefix>-workers`` KV bucket."""

    id: str
    hostname: str
    pid: int
    queues: list[str]
    concurrency: int
    active: int
    processed: int
    failed: int
    retried: int
    started_at: float
    heartbeat_at: float
    version: str


class JobState(enum.StrEnum):
    """Where a job is in its life."""

    #: Waiting in its queue.
    QUEUED = "queued"
    #: Held until its time comes (a delayed job).
    DEFERRED = "deferred"
    #: Held until the jobs it depends on have succeeded (``depends_on``).
    WAITING = "waiting"
    #: A worker runs it.
    RUNNING = "running"
    #: An attempt failed; it waits for its next attempt.
    RETRYING = "retrying"
    #: The task returned; `result` holds its value.
    SUCCEEDED = "succeeded"
    #: Dead-lettered: its last attempt failed, or it could not run at all.
    FAILED = "failed"
    #: Dead-lettered: it waited longer than its ttl.
    EXPIRED = "expired"
    #: Removed or cancelled by `abort`; never retried.
    ABORTED = "aborted"


TERMINAL_STATES: Final = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.EXPIRED, JobState.ABORTED}
)


class JobRecord(msgspec.Struct, omit_defaults=True):
    """A job's latest state, the value of its key (the job id) in ``<prefix>-results``."""

    id: str
    state: JobState
    task: str | None = None
    queue: str | None = None
    attempts: int = 0
    worker: str | None = None
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    error: ErrorInfo | None = None
    retry_at: float | None = None
    retry_of: int | None = None
    #: Stream sequence of the job's message while it is stored (queued, running, retrying).
    seq: int | None = None
    #: Ids of the jobs it waited for (``depends_on``).
    depends_on: list[str] | None = None
    #: Deliveries its group's limits put back (``app.group_limit``): they are not attempts.
    deferred: int = 0
    #: Its priority level, if not the default 5 (set once a worker or a retry wrote it).
    priority: int | None = None
    #: The group whose limits it obeys (set once a worker or a retry wrote it).
    group: str | None = None
    #: The unique key it holds in ``<prefix>-unique`` (set once a worker or a retry wrote it).
    unique_key: str | None = None


class EventKind(enum.StrEnum):
    """What happened to a job; the last token of the event subject."""

    ENQUEUED = "enqueued"
    STARTED = "started"
    PROGRESS = "progress"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"
    EXPIRED = "expired"
    ABORTED = "aborted"


class Event(msgspec.Struct, omit_defaults=True):
    """A lifecycle event, published on ``<prefix>.events.<queue>.<kind>``."""

    kind: EventKind
    id: str
    queue: str
    at: float
    task: str | None = None
    attempt: int | None = None
    worker: str | None = None
    duration: float | None = None
    error: ErrorInfo | None = None
    delay: float | None = None
    progress: float | None = None
    message: str | None = None


_job_decoder: Final = msgspec.json.Decoder(JobMessage)
_encoder: Final = msgspec.json.Encoder()


def decode_job(data: bytes) -> JobMessage:
    """Decode one job message; raises `msgspec.DecodeError` or `msgspec.ValidationError`."""
    return _job_decoder.decode(data)


def encode(value: object) -> bytes:
    """Encode any wire struct (or JSON-compatible value) to JSON bytes."""
    return _encoder.encode(value)


def json_schemas() -> dict[str, Any]:
    """JSON Schemas of every wire struct, keyed by struct name.

    The output depends only on the structs, not on the msgspec release: descriptions are the
    docstrings cleaned with `inspect.cleandoc`, and the alternatives of each ``anyOf`` are
    sorted (releases differ in both, and neither changes what a schema accepts).
    """
    structs = (JobMessage, DeadLetter, WorkerInfo, JobRecord, Event, UniqueHolder, WaitingJob)
    _, components = msgspec.json.schema_components(structs, ref_template="#/$defs/{name}")
    return {name: _canonical(schema) for name, schema in components.items()}


def _canonical(node: Any) -> Any:
    if isinstance(node, list):
        return [_canonical(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _canonical(value) for key, value in node.items()}
    if isinstance(out.get("description"), str):
        out["description"] = inspect.cleandoc(out["description"])
    if isinstance(out.get("anyOf"), list):
        out["anyOf"] = sorted(out["anyOf"], key=lambda item: json.dumps(item, sort_keys=True))
    return out
