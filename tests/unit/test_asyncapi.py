"""docs/asyncapi.json describes every subject aioq uses and agrees with the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aioq import wire
from aioq.asyncapi import asyncapi_document
from aioq.naming import Names

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = "regenerate with: .venv/bin/python -m aioq.asyncapi > docs/asyncapi.json"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def test_file_matches_the_code() -> None:
    stored = json.loads((DOCS / "asyncapi.json").read_text())
    assert stored == asyncapi_document(), REGENERATE


def test_every_reference_resolves() -> None:
    document = asyncapi_document()
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert _resolve(document, ref) is not None, ref


def test_addresses_are_the_subjects_the_code_uses() -> None:
    names = Names("shop")
    channels = asyncapi_document("shop")["channels"]

    def address(channel: str, **values: str) -> str:
        text: str = channels[channel]["address"]
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        assert "{" not in text, text
        return text

    assert address("jobs", queue="email") == names.job_subject("email")
    assert address("priorityJobs", queue="email", level="9") == names.priority_subject("email", 9)
    assert address("heldJobs", queue="email", jobId="j1") == names.sched_subject("email", "j1")
    assert address("deadLetters", queue="email", jobId="j1") == names.dead_subject("email", "j1")
    assert address("events", queue="email", kind="started") == names.event_subject(
        "email", "started"
    )
    assert address("abort", jobId="j1") == names.abort_subject("j1")
    assert address("records", jobId="j1") == f"$KV.{names.results_bucket}.j1"
    assert address("heartbeats", workerId="w1") == f"$KV.{names.workers_bucket}.w1"
    assert address("ticks", name="nightly") == f"$KV.{names.schedules_bucket}.nightly"
    assert address("rateLimits", queue="email") == f"$KV.{names.limits_bucket}.email"


def test_every_wire_struct_is_the_payload_of_a_message() -> None:
    document = asyncapi_document()
    payload_refs = {
        message["payload"].get("$ref") for message in document["components"]["messages"].values()
    }
    top_level = {"JobMessage", "DeadLetter", "WorkerInfo", "JobRecord", "Event"}
    assert top_level <= set(wire.json_schemas())
    assert {f"#/components/schemas/{name}" for name in top_level} <= payload_refs


def test_every_operation_names_a_channel_of_the_document() -> None:
    document = asyncapi_document()
    for name, operation in document["operations"].items():
        assert operation["action"] in {"send", "receive"}, name
        assert _resolve(document, operation["channel"]["$ref"]), name
