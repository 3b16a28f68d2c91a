"""An AsyncAPI 3.0 document of every NATS subject aioq uses, built from `naming` and `wire`.

`docs/asyncapi.json` is this document for the default prefix; a test keeps the file in sync.
Regenerate it with ``python -m aioq.asyncapi > docs/asyncapi.json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Final

from aioq import wire
from aioq.naming import JOB_ID_PATTERN, Names

__all__ = ["PROTOCOL_VERSION", "asyncapi_document"]

PROTOCOL_VERSION: Final = "1.0.0"
"""Version of the wire protocol described; it changes only when a payload or subject does."""

_QUEUE: Final = {"description": "Queue name: 1-64 of A-Za-z0-9_-."}
_JOB_ID: Final = {"description": f"Job id, matching {JOB_ID_PATTERN}."}
_KIND: Final = {
    "description": "Event kind.",
    "enum": [kind.value for kind in wire.EventKind],
}
_LEVEL: Final = {
    "description": "Priority level: 0 (lowest) to 9 (highest); 5 goes on the queue's own subject.",
    "enum": [str(level) for level in range(10)],
}
_WORKER_ID: Final = {"description": "Worker id, as in WorkerInfo.id."}
_NAME: Final = {"description": "Name of the repeatable job."}

_RUN_AT_HEADERS: Final = {
    "type": "object",
    "properties": {
        "Aioq-Run-At": {
            "type": "string",
            "description": "When the job is due: unix seconds, or an RFC 3339 time with a zone.",
        },
        "Nats-Msg-Id": {"type": "string", "description": "The job id (idempotency key)."},
        "traceparent": {
            "type": "string",
            "description": "W3C trace context, kept when the job is released to its queue.",
        },
    },
    "required": ["Aioq-Run-At"],
}
_TTL_HEADERS: Final = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {"type": "string", "description": "<job id>:history"},
        "Nats-TTL": {
            "type": "string",
            "description": "Whole seconds the message is kept (the queue's retention).",
        },
    },
}
_MSG_ID_HEADERS: Final = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {
            "type": "string",
            "description": "The job id: JetStream stores a repeat within two minutes once.",
        },
        "traceparent": {
            "type": "string",
            "description": "W3C trace context, continued by the worker when tracing is on.",
        },
    },
}
_TICK: Final = {
    "type": "object",
    "properties": {"tick": {"type": "number"}, "fired_at": {"type": "number"}},
    "required": ["tick", "fired_at"],
}
_GRANTS: Final = {
    "type": "object",
    "properties": {
        "grants": {
            "type": "array",
            "items": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "integer"}]},
        },
        "limit": {"type": "integer"},
        "interval": {"type": "number"},
    },
    "required": ["grants", "limit", "interval"],
}


def _ref(schema: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{schema}"}


def _channel(
    address: str, summary: str, message: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    return {
        "address": address,
        "description": summary,
        "parameters": {name: dict(value) for name, value in parameters.items()},
        "messages": {message: {"$ref": f"#/components/messages/{message}"}},
    }


def _channels(names: Names) -> dict[str, Any]:
    p = names.prefix
    results, workers = names.results_bucket, names.workers_bucket
    return {
        "jobs": _channel(
            f"{p}.jobs.{{queue}}",
            f"Jobs of a queue, stored in stream {names.jobs_stream}; pulled by the durable "
            "consumer named after the queue.",
            "job",
            {"queue": _QUEUE},
        ),
        "priorityJobs": _channel(
            f"{p}.jobs.{{queue}}.p.{{level}}",
            f"Jobs of a queue at a priority level other than the default 5, stored in stream "
            f"{names.jobs_stream}; each level is pulled by its own durable consumer "
            "<queue>@p<level>, higher levels first (docs/priorities.md). Set the job's "
            "priority field to the level too, so that retries from the dead letters and "
            "replays keep it.",
            "job",
            {"queue": _QUEUE, "level": _LEVEL},
        ),
        "heldJobs": _channel(
            f"{p}.sched.{{queue}}.{{jobId}}",
            f"Delayed jobs held in stream {names.jobs_stream} until the time in Aioq-Run-At; "
            f"the schedulers' consumer {names.scheduler_consumer} moves them to the queue.",
            "heldJob",
            {"queue": _QUEUE, "jobId": _JOB_ID},
        ),
        "deadLetters": _channel(
            f"{p}.dead.{{queue}}.{{jobId}}",
            f"Dead letters, stored in stream {names.dead_stream} until purged.",
            "deadLetter",
            {"queue": _QUEUE, "jobId": _JOB_ID},
        ),
        "history": _channel(
            f"{p}.history.{{queue}}.{{jobId}}",
            f"Succeeded jobs of queues that keep a history, in stream {names.history_stream}, "
            "each removed after its queue's retention (header Nats-TTL).",
            "keptJob",
            {"queue": _QUEUE, "jobId": _JOB_ID},
        ),
        "events": _channel(
            f"{p}.events.{{queue}}.{{kind}}",
            "Lifecycle events on core NATS (not stored).",
            "event",
            {"queue": _QUEUE, "kind": _KIND},
        ),
        "abort": _channel(
            f"{p}.control.abort.{{jobId}}",
            "Abort requests, heard by every worker; the body is empty.",
            "abort",
            {"jobId": _JOB_ID},
        ),
        "records": _channel(
            f"$KV.{results}.{{jobId}}",
            f"Job states and results: KV bucket {results}, key = job id.",
            "record",
            {"jobId": _JOB_ID},
        ),
        "heartbeats": _channel(
            f"$KV.{workers}.{{workerId}}",
            f"Worker heartbeats: KV bucket {workers}, key = worker id, TTL 3 heartbeats.",
            "heartbeat",
            {"workerId": _WORKER_ID},
        ),
        "ticks": _channel(
            f"$KV.{names.schedules_bucket}.{{name}}",
            f"Last tick fired per repeatable job: KV bucket {names.schedules_bucket}.",
            "tick",
            {"name": _NAME},
        ),
        "rateLimits": _channel(
            f"$KV.{names.limits_bucket}.{{queue}}",
            f"Shared rate-limit grants per queue: KV bucket {names.limits_bucket}, "
            "written with compare-and-set. Group limits use keys group.<group>.rate (the "
            "same grants) and group.<group>.running (leases of running jobs).",
            "rateLimit",
            {"queue": _QUEUE},
        ),
    }


def _message(name: str, payload: dict[str, Any], headers: dict[str, Any] | None = None) -> Any:
    message: dict[str, Any] = {"name": name, "contentType": "application/json", "payload": payload}
    if headers is not None:
        message["headers"] = headers
    return message


_MESSAGES: Final = {
    "job": _message("job", _ref("JobMessage"), _MSG_ID_HEADERS),
    "heldJob": _message("heldJob", _ref("JobMessage"), _RUN_AT_HEADERS),
    "deadLetter": _message("deadLetter", _ref("DeadLetter")),
    "keptJob": _message("keptJob", _ref("JobMessage"), _TTL_HEADERS),
    "event": _message("event", _ref("Event")),
    "abort": _message("abort", {"type": "string", "maxLength": 0}),
    "record": _message("record", _ref("JobRecord")),
    "heartbeat": _message("heartbeat", _ref("WorkerInfo")),
    "tick": _message("tick", _TICK),
    "rateLimit": _message("rateLimit", _GRANTS),
}

# (operation, action, channel, who does it)
_OPERATIONS: Final = (
    ("enqueue", "send", "jobs", "A producer stores a job."),
    ("takeJobs", "receive", "jobs", "A worker pulls jobs of its queues."),
    ("enqueueWithPriority", "send", "priorityJobs", "A producer stores a job of a level."),
    ("takePriorityJobs", "receive", "priorityJobs", "A worker pulls the levels in use."),
    ("hold", "send", "heldJobs", "A producer stores a delayed job."),
    ("release", "receive", "heldJobs", "A scheduler moves a due job to its queue."),
    ("deadLetter", "send", "deadLetters", "A worker stores a job that will not run again."),
    ("keepJob", "send", "history", "A worker keeps a succeeded job for replay."),
    ("replay", "receive", "history", "A client reads kept jobs and enqueues them again."),
    ("publishEvent", "send", "events", "Producers and workers announce lifecycle changes."),
    ("listenEvents", "receive", "events", "Anyone may listen."),
    ("abortJob", "send", "abort", "A client asks for a job to stop."),
    ("hearAborts", "receive", "abort", "Workers cancel the job if they run it."),
    ("writeRecord", "send", "records", "Producers and workers store a job's state."),
    ("readRecord", "receive", "records", "Clients read or watch a job's state and result."),
    ("heartbeat", "send", "heartbeats", "A worker announces it is alive."),
    ("fireTick", "send", "ticks", "A scheduler claims a tick of a repeatable job."),
    ("grantStarts", "send", "rateLimits", "Workers take starts from a shared rate limit."),
)


def asyncapi_document(prefix: str = "aioq") -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the subjects, buckets and payloads of apps on `prefix`."""
    names = Names(prefix)
    document = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "aioq",
            "version": PROTOCOL_VERSION,
            "description": (
                "Subjects and payloads of the aioq job queue on NATS JetStream, for the "
                f"prefix {prefix!r}. docs/protocol.md explains each field."
            ),
        },
        "defaultContentType": "application/json",
        "channels": _channels(names),
        "operations": {
            name: {
                "action": action,
                "channel": {"$ref": f"#/channels/{channel}"},
                "summary": summary,
            }
            for name, action, channel, summary in _OPERATIONS
        },
        "components": {"messages": _MESSAGES, "schemas": wire.json_schemas()},
    }
    # A copy through JSON: callers may change the result, and refs must point at components.
    text = json.dumps(document).replace('"#/$defs/', '"#/components/schemas/')
    loaded: dict[str, Any] = json.loads(text)
    return loaded


if __name__ == "__main__":  # pragma: no cover - a regeneration command
    sys.stdout.write(json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n")
