"""`aioq doctor`'s rules: what a server's set-up means for aioq's jobs, and how to fix it.

The facts (server, streams, consumers) are gathered by the backend (`aioq._nats.doctor`);
the rules here are pure: `audit(facts)` returns the findings, errors first.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["ConsumerFacts", "Facts", "Finding", "Level", "StreamFacts", "audit"]

# Jepsen (2025) saw streams deleted after crashes before 2.10.23.
_MIN_VERSION = (2, 10, 23)
# Queue pauses need the server's consumer pause.
_PAUSE_VERSION = (2, 11, 0)
_DEFAULT_SYNC_S = 120.0
_MIN_ACK_WAIT_S = 5.0
_MAX_ACK_WAIT_S = 600.0
_LARGE_PAYLOAD = 8 * 1024 * 1024
_FULL_SHARE = 0.8


class Level(enum.IntEnum):
    """How bad a finding is; an error makes `aioq doctor` exit non-zero."""

    OK = 0
    WARNING = 1
    ERROR = 2


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found, and how to fix it (empty when nothing needs fixing)."""

    level: Level
    what: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """A stream's settings and state, as the server reports them."""

    name: str
    role: str  # what aioq keeps in it, for the messages
    storage: str  # "file" or "memory"
    replicas: int
    retention: str  # "limits", "workqueue", "interest"
    discard: str  # "old" or "new"
    max_age: float  # seconds, 0 none
    max_msgs: int
    max_bytes: int
    max_msgs_per_subject: int
    duplicate_window: float
    messages: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ConsumerFacts:
    """A queue's durable consumer."""

    queue: str
    ack_policy: str
    ack_wait: float
    max_deliver: int
    inactive_threshold: float | None
    pending: int
    #: ack_wait the app sets for this queue, when an app was given.
    app_ack_wait: float | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """What `aioq doctor` looks at."""

    version: tuple[int, int, int]
    jetstream: bool
    max_payload: int
    #: True: sync_interval always; a number: the interval in seconds; None: unknown.
    sync: bool | float | None
    clustered: bool
    account_storage_limit: int  # bytes, -1 unlimited
    account_storage_used: int
    jobs_stream_expected: str
    streams: list[StreamFacts] = field(default_factory=list)
    consumers: list[ConsumerFacts] = field(default_factory=list)
    dead_letters: dict[str, int] = field(default_factory=dict)
    #: Queues the app's tasks use that no worker has pulled yet.
    unpulled_queues: list[str] = field(default_factory=list)


def audit(facts: Facts) -> list[Finding]:
    """Every finding about `facts`, errors first."""
    if not facts.jetstream:
        return [
            Finding(
                Level.ERROR,
                "JetStream is off on this server: aioq stores every job in it",
                "start nats-server with -js, or put a jetstream {} block in its config",
            )
        ]
    findings = [*_server(facts), *_sync(facts), *_storage(facts)]
    if not any(s.name == facts.jobs_stream_expected for s in facts.streams):
        findings.append(
            Finding(
                Level.WARNING,
                f"no {facts.jobs_stream_expected} stream yet: nothing was enqueued under this "
                "prefix",
                "check --prefix; the streams are created when an app or worker first connects",
            )
        )
    for stream in facts.streams:
        findings += _stream(stream, facts.clustered)
    for consumer in facts.consumers:
        findings += _consumer(consumer)
    findings += _dead_and_unpulled(facts)
    return sorted(findings, key=lambda f: -f.level)


def _version(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


def _server(facts: Facts) -> list[Finding]:
    found = [Finding(Level.OK, f"nats-server {_version(facts.version)} with JetStream")]
    if facts.version < _MIN_VERSION:
        found.append(
            Finding(
                Level.ERROR,
                f"nats-server {_version(facts.version)} can lose whole streams after crashes "
                "(fixed in 2.10.23)",
                "upgrade nats-server to 2.10.23 or later (2.12.3+ preferred)",
            )
        )
    elif facts.version < _PAUSE_VERSION:
        found.append(
            Finding(
                Level.WARNING,
                f"nats-server {_version(facts.version)} cannot pause consumers: "
                "`aioq queue pause` will fail",
                "upgrade nats-server to 2.11 or later",
            )
        )
    if facts.max_payload > _LARGE_PAYLOAD:
        found.append(
            Finding(
                Level.WARNING,
                f"max_payload is {facts.max_payload} bytes: every fetched batch of jobs is "
                "held in memory whole, so large jobs cost memory in every worker",
                "keep max_payload at 1MB (the default) and pass large data by reference",
            )
        )
    else:
        found.append(Finding(Level.OK, f"max_payload {facts.max_payload} bytes (largest job)"))
    return found


def _sync(facts: Facts) -> list[Finding]:
    if facts.sync is True:
        return [Finding(Level.OK, "sync_interval: always (every write is fsynced before its ack)")]
    if facts.sync is None:
        return [
            Finding(
                Level.WARNING,
                "cannot tell how often the server fsyncs (no monitoring endpoint reached)",
                "pass --monitor http://HOST:8222, or check that jetstream { sync_interval: "
                "always } is in the server's config",
            )
        ]
    interval = _DEFAULT_SYNC_S if facts.sync is False else facts.sync
    return [
        Finding(
            Level.WARNING,
            f"writes are fsynced every {interval:g}s: a power loss or OS crash of the server "
            f"loses the jobs acknowledged in the last {interval:g}s (a crash of nats-server "
            "alone loses nothing)",
            "set jetstream { sync_interval: always } in the server's config (docs/deployment.md)",
        )
    ]


def _storage(facts: Facts) -> list[Finding]:
    limit, used = facts.account_storage_limit, facts.account_storage_used
    if limit > 0 and used > _FULL_SHARE * limit:
        return [
            Finding(
                Level.WARNING,
                f"the account uses {used} of its {limit} bytes of file storage: enqueues fail "
                "once it is full",
                "raise jetstream { max_file_store } (or the account's limit), or drain queues",
            )
        ]
    return []


def _stream(s: StreamFacts, clustered: bool) -> list[Finding]:
    found: list[Finding] = []
    if s.storage != "file":
        found.append(
            Finding(
                Level.ERROR,
                f"stream {s.name} ({s.role}) is kept in memory: a server restart loses it",
                "recreate it with file storage (delete it; aioq recreates it as a file stream)",
            )
        )
    if s.replicas < 3:
        found.append(
            Finding(
                Level.WARNING if clustered else Level.OK,
                f"stream {s.name} ({s.role}) has {s.replicas} replica(s): "
                + ("a lost server or disk loses its jobs" if clustered else "one server, no copy"),
                "run a cluster of 3 and `nats stream edit --replicas 3` (docs/deployment.md)"
                if clustered
                else "",
            )
        )
    if s.role == "jobs":
        found += _jobs_stream(s)
    return found


def _jobs_stream(s: StreamFacts) -> list[Finding]:
    found: list[Finding] = []
    if s.retention != "workqueue":
        found.append(
            Finding(
                Level.ERROR,
                f"stream {s.name} has {s.retention} retention, not workqueue: finished jobs "
                "stay and could run again",
                "delete the stream (after draining it); aioq recreates it",
            )
        )
    if s.max_age > 0:
        found.append(
            Finding(
                Level.ERROR,
                f"stream {s.name} drops jobs older than {s.max_age:g}s without a record",
                f"nats stream edit {s.name} --max-age 0 (use a task ttl to expire jobs)",
            )
        )
    capped = s.max_msgs > 0 or s.max_bytes > 0 or s.max_msgs_per_subject > 0
    if capped and s.discard == "old":
        found.append(
            Finding(
                Level.ERROR,
                f"stream {s.name} has limits with discard: old: once full it silently "
                "deletes the oldest queued jobs",
                f"nats stream edit {s.name} --discard new",
            )
        )
    if s.max_msgs_per_subject > 0:
        found.append(Finding(Level.OK, f"each queue holds at most {s.max_msgs_per_subject} jobs"))
    else:
        found.append(
            Finding(
                Level.WARNING,
                f"queues have no cap: a runaway producer can fill the disk ({s.messages} "
                f"jobs, {s.bytes} bytes now)",
                "set Aarq(max_queued=N): an enqueue beyond it raises QueueFullError",
            )
        )
    if s.duplicate_window < 60:
        found.append(
            Finding(
                Level.WARNING,
                f"stream {s.name} deduplicates over {s.duplicate_window:g}s only: a retried "
                "enqueue after that stores the job twice",
                f"nats stream edit {s.name} --dupe-window 2m",
            )
        )
    return found


def _consumer(c: ConsumerFacts) -> list[Finding]:
    found: list[Finding] = []
    name = "the scheduler's consumer" if c.queue.startswith("@") else f"queue {c.queue!r}"
    if c.ack_policy != "explicit":
        found.append(
            Finding(
                Level.ERROR,
                f"{name}: consumer acks {c.ack_policy}, not explicit: jobs count as done before "
                "they run",
                f"delete the consumer; the next worker recreates it (aioq queue delete {c.queue})",
            )
        )
    if c.inactive_threshold:
        found.append(
            Finding(
                Level.ERROR,
                f"{name}: consumer is deleted after {c.inactive_threshold:g}s without workers, "
                "and with it the delivery counts of its jobs",
                "delete the consumer; the next worker recreates it without inactive_threshold",
            )
        )
    if c.max_deliver != -1:
        found.append(
            Finding(
                Level.WARNING,
                f"{name}: the server stops delivering a job after {c.max_deliver} deliveries "
                "and leaves it in the stream, unseen; aioq bounds deliveries itself and "
                "dead-letters the job",
                "delete the consumer; the next worker recreates it with max_deliver -1",
            )
        )
    found += _ack_wait(c, name)
    return found


def _ack_wait(c: ConsumerFacts, name: str) -> list[Finding]:
    if c.app_ack_wait is not None and abs(c.app_ack_wait - c.ack_wait) > 0.001:
        return [
            Finding(
                Level.WARNING,
                f"{name}: the consumer's ack_wait is {c.ack_wait:g}s, the app's is "
                f"{c.app_ack_wait:g}s",
                "start a worker of this app: it updates the consumer",
            )
        ]
    if c.ack_wait < _MIN_ACK_WAIT_S:
        return [
            Finding(
                Level.WARNING,
                f"{name}: ack_wait is {c.ack_wait:g}s: a worker whose event loop stalls that "
                "long (a blocking call, a GC pause) has its jobs run twice",
                "app.queue(name, ack_wait=30)",
            )
        ]
    if c.ack_wait > _MAX_ACK_WAIT_S:
        return [
            Finding(
                Level.WARNING,
                f"{name}: ack_wait is {c.ack_wait:g}s: the jobs of a worker that dies wait "
                "that long before they run elsewhere (running jobs are kept leased anyway)",
                "app.queue(name, ack_wait=30)",
            )
        ]
    return [Finding(Level.OK, f"{name}: ack_wait {c.ack_wait:g}s, {c.pending} job(s) waiting")]


def _dead_and_unpulled(facts: Facts) -> list[Finding]:
    found = [
        Finding(
            Level.WARNING,
            f"queue {queue!r} has {count} dead letter(s)",
            f"aioq dead list {queue}; then aioq dead retry or aioq dead purge",
        )
        for queue, count in sorted(facts.dead_letters.items())
        if count
    ]
    found += [
        Finding(
            Level.WARNING,
            f"queue {queue!r}: no worker has pulled it yet",
            f"start one: aioq worker APP -q {queue}",
        )
        for queue in facts.unpulled_queues
    ]
    return found
