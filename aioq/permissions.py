"""Least-privilege NATS permissions per aioq role, from the names aioq gives its subjects.

`permissions(role, queues, prefix)` lists the subjects a user of that role may publish to and
subscribe to; `server_block` renders them as a nats-server ``permissions`` block. The roles:

- ``producer``: enqueue to the named queues (now or delayed) and read job records and results.
- ``worker``: pull the named queues' jobs, settle them, write records, dead letters, events
  and heartbeats. Without the scheduler: run workers with ``--no-scheduler`` and one
  ``aioq scheduler`` under the ``scheduler`` role.
- ``scheduler``: move due delayed jobs and fire repeatable jobs, onto any queue.
- ``dashboard``: read-only views: queues, workers, records, dead letters, events. It can read
  job records and dead letters (they hold arguments and errors), but change nothing.
- ``admin``: everything under the app's prefix: create streams, purge, delete, retry.

Replies come on the client's inbox prefix (``_INBOX.>`` by default). A user allowed
``_INBOX.>`` could subscribe to other users' replies, fetched jobs included: give each role
its own prefix (``Aarq(inbox_prefix="_INBOX_worker")``, ``--inbox-prefix``) and pass the same
to `permissions`, so that each user may subscribe only to its own inboxes.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass

from aioq.errors import ConfigError
from aioq.naming import Names, validate_inbox_prefix, validate_queue
from aioq.priority import MAX_PRIORITY, MIN_PRIORITY

__all__ = ["Permissions", "Role", "describe_subject", "permissions"]

LEVELS = range(MIN_PRIORITY, MAX_PRIORITY + 1)


class Role(enum.StrEnum):
    """What a NATS user does for aioq."""

    PRODUCER = "producer"
    WORKER = "worker"
    SCHEDULER = "scheduler"
    DASHBOARD = "dashboard"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Permissions:
    """Subjects a role may publish to and subscribe to."""

    role: Role
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]

    def server_block(self, indent: int = 0) -> str:
        """The nats-server config ``permissions`` block (allow lists; the rest is denied)."""
        pad = " " * indent

        def subjects(items: Sequence[str]) -> str:
            inner = "".join(f"{pad}      {json.dumps(s)}\n" for s in items)
            return f"[\n{inner}{pad}    ]"

        return (
            f"{pad}permissions = {{\n"
            f"{pad}  publish = {{\n{pad}    allow = {subjects(self.publish)}\n{pad}  }}\n"
            f"{pad}  subscribe = {{\n{pad}    allow = {subjects(self.subscribe)}\n{pad}  }}\n"
            f"{pad}}}"
        )


def _api(*subjects: str) -> list[str]:
    return [f"$JS.API.{s}" for s in subjects]


def _kv_read(bucket: str) -> list[str]:
    """Bind a KV bucket, read keys and watch them (an ordered consumer of its own)."""
    stream = f"KV_{bucket}"
    return [
        *_api(f"STREAM.INFO.{stream}", f"DIRECT.GET.{stream}.>", f"STREAM.MSG.GET.{stream}"),
        *_api(f"CONSUMER.CREATE.{stream}", f"CONSUMER.CREATE.{stream}.>"),
        *_api(f"CONSUMER.INFO.{stream}.>"),
        f"$JS.FC.{stream}.>",
    ]


def _kv_write(bucket: str) -> list[str]:
    return [*_kv_read(bucket), f"$KV.{bucket}.>"]


def _consumer(stream: str, durable: str) -> list[str]:
    """Create or update, look up and pull a durable consumer, and settle its messages."""
    return [
        *_api(f"CONSUMER.CREATE.{stream}.{durable}", f"CONSUMER.CREATE.{stream}.{durable}.>"),
        *_api(f"CONSUMER.DURABLE.CREATE.{stream}.{durable}", f"CONSUMER.INFO.{stream}.{durable}"),
        *_api(f"CONSUMER.MSG.NEXT.{stream}.{durable}"),
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def _common(names: Names) -> list[str]:
    """What every role does on connecting: account info, and binding the app's streams.

    The history stream's state is read too: queue stats name each queue's history retention.
    """
    streams = (names.jobs_stream, names.dead_stream, names.history_stream)
    return [
        *_api("INFO", *(f"STREAM.INFO.{stream}" for stream in streams)),
        *_kv_read(names.results_bucket),
    ]


def _producer(names: Names, queues: Sequence[str]) -> list[str]:
    subjects = [*_kv_write(names.results_bucket), *_unique(names)]
    for queue in queues:
        subjects += [names.job_subject(queue), names.sched_subject(queue)]
        subjects += [names.priority_wildcard(queue), names.event_subject(queue, "*")]
    # Looking a job up by id reads its queue's consumer state and the stored message.
    subjects += _api(f"CONSUMER.INFO.{names.jobs_stream}.*", "STREAM.NAMES")
    subjects += _api(f"STREAM.MSG.GET.{names.jobs_stream}", f"DIRECT.GET.{names.jobs_stream}")
    # Replaying reads the queues' history (kept only for queues with a history).
    subjects += _api(f"STREAM.MSG.GET.{names.history_stream}")
    return subjects


def _worker(names: Names, queues: Sequence[str]) -> list[str]:
    subjects = [*_kv_write(names.results_bucket), *_kv_write(names.workers_bucket)]
    subjects += [*_kv_write(names.limits_bucket), *_api(f"STREAM.CREATE.KV_{names.workers_bucket}")]
    subjects += [*_api(f"STREAM.CREATE.KV_{names.limits_bucket}"), *_unique(names)]
    for queue in queues:
        subjects += _consumer(names.jobs_stream, names.consumer(queue))
        for level in LEVELS:  # each priority level in use has a consumer of its own
            subjects += _consumer(names.jobs_stream, names.consumer(queue, level))
        subjects += [names.dead_subject(queue), names.event_subject(queue, "*")]
        subjects.append(names.history_subject(queue))
    subjects += _api(f"STREAM.MSG.GET.{names.jobs_stream}", f"DIRECT.GET.{names.jobs_stream}")
    subjects += _api(f"STREAM.CREATE.{names.history_stream}")
    return subjects


def _unique(names: Names) -> list[str]:
    """Claim and free unique keys, store and settle waiting jobs (buckets made on first use)."""
    subjects = []
    for bucket in (names.unique_bucket, names.waiting_bucket):
        subjects += [*_kv_write(bucket), *_api(f"STREAM.CREATE.KV_{bucket}")]
    return subjects


def _scheduler(names: Names) -> list[str]:
    subjects = [*_kv_write(names.results_bucket), *_kv_write(names.schedules_bucket)]
    subjects += _api(f"STREAM.CREATE.KV_{names.schedules_bucket}")
    subjects += _consumer(names.jobs_stream, names.scheduler_consumer)
    subjects += [names.job_subject("*"), names.priority_wildcard("*"), names.sched_wildcard]
    subjects += _unique(names)
    subjects += [names.dead_subject("*"), names.event_subject("*", "*")]
    return subjects


def _dashboard(names: Names) -> list[str]:
    subjects = _api("STREAM.NAMES", "STREAM.LIST")
    subjects += _api(f"STREAM.MSG.GET.{names.history_stream}")
    for stream in (names.jobs_stream, names.dead_stream):
        subjects += _api(f"STREAM.MSG.GET.{stream}", f"DIRECT.GET.{stream}")
    subjects += _api(
        f"CONSUMER.INFO.{names.jobs_stream}.*",
        f"CONSUMER.NAMES.{names.jobs_stream}",
        f"CONSUMER.LIST.{names.jobs_stream}",
    )
    buckets = (names.workers_bucket, names.schedules_bucket, names.limits_bucket)
    for bucket in (*buckets, names.unique_bucket, names.waiting_bucket):
        subjects += _kv_read(bucket)
    return subjects


def _admin(names: Names) -> list[str]:
    buckets = (names.results_bucket, names.workers_bucket, names.schedules_bucket)
    flows = (names.limits_bucket, names.unique_bucket, names.waiting_bucket)
    kv = [f"$KV.{b}.>" for b in (*buckets, *flows)]
    return ["$JS.API.>", f"$JS.ACK.{names.jobs_stream}.>", "$JS.FC.>", f"{names.prefix}.>", *kv]


def permissions(
    role: Role | str,
    queues: Sequence[str] = (),
    prefix: str = "aioq",
    inbox_prefix: str = "_INBOX",
) -> Permissions:
    """The allow lists of `role` for `queues` (producer and worker) under `prefix`.

    The user may subscribe to replies under `inbox_prefix` only: the same value the role's
    clients connect with (``Aarq(inbox_prefix=...)``).

    Raises:
        ConfigError: An unknown role, a bad queue name, or a producer or worker without queues.
    """
    try:
        chosen = Role(role)
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ConfigError(f"unknown role {role!r}: use one of {known}") from None
    names = Names(prefix)
    validate_inbox_prefix(inbox_prefix)
    for queue in queues:
        validate_queue(queue)
    if chosen in (Role.PRODUCER, Role.WORKER) and not queues:
        raise ConfigError(f"the {chosen} role needs its queues: name at least one")
    subscribe = [f"{inbox_prefix}.>"]
    if chosen is Role.PRODUCER:
        publish = _producer(names, queues)
    elif chosen is Role.WORKER:
        publish = _worker(names, queues)
        # Its scheduler settles waiting jobs when it hears jobs end; it hears the first job
        # stored on a priority level it does not pull yet.
        subscribe += [names.abort_subject(), names.event_subject()]
        subscribe += [names.priority_wildcard(queue) for queue in queues]
    elif chosen is Role.SCHEDULER:
        publish = _scheduler(names)
        subscribe.append(names.event_subject())
    elif chosen is Role.DASHBOARD:
        publish = _dashboard(names)
        subscribe.append(names.event_subject())
    else:
        publish = _admin(names)
        subscribe.append(f"{names.prefix}.>")
    if chosen is not Role.ADMIN:  # the admin's wildcards cover these
        publish = _common(names) + publish
    return Permissions(chosen, tuple(dict.fromkeys(publish)), tuple(subscribe))


def describe_subject(subject: str) -> str:
    """What publishing to `subject` does, for a permission error (the subject if unknown)."""
    for stem, what in _DESCRIPTIONS:
        if subject.upper().startswith(stem):
            rest = subject[len(stem) :]
            return f"{what} ({rest})" if rest else what
    return subject


_DESCRIPTIONS = (
    ("$JS.API.CONSUMER.MSG.NEXT.", "pull jobs from a consumer"),
    ("$JS.API.CONSUMER.CREATE.", "create or update a consumer"),
    ("$JS.API.CONSUMER.DURABLE.CREATE.", "create a consumer"),
    ("$JS.API.CONSUMER.DELETE.", "delete a consumer"),
    ("$JS.API.CONSUMER.INFO.", "read a consumer's state"),
    ("$JS.API.STREAM.PURGE.", "purge a stream"),
    ("$JS.API.STREAM.MSG.DELETE.", "delete a stored message"),
    ("$JS.API.STREAM.CREATE.", "create a stream"),
    ("$JS.API.STREAM.UPDATE.", "update a stream"),
    ("$JS.API.STREAM.DELETE.", "delete a stream"),
    ("$JS.API.STREAM.INFO.", "read a stream's state"),
    ("$JS.API.STREAM.MSG.GET.", "read a stored message"),
    ("$JS.API.DIRECT.GET.", "read a stored message"),
    ("$JS.ACK.", "settle (ack) a job"),
    ("$KV.", "write a key"),
)
