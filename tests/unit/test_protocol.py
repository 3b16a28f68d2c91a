"""docs/protocol.md and docs/schema.json agree with the wire structs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import pytest

from aioq import wire

DOCS = Path(__file__).resolve().parents[2] / "docs"
REGENERATE = (
    "regenerate with: .venv/bin/python -c 'import json, aioq.wire as w; "
    "print(json.dumps(w.json_schemas(), indent=2, sort_keys=True))' > docs/schema.json"
)


def test_schema_file_matches_the_structs() -> None:
    stored = json.loads((DOCS / "schema.json").read_text())
    assert stored == json.loads(json.dumps(wire.json_schemas(), sort_keys=True)), REGENERATE


@pytest.mark.parametrize(
    "struct", [wire.JobMessage, wire.DeadLetter, wire.WorkerInfo, wire.JobRecord, wire.Event]
)
def test_protocol_page_documents_every_field(struct: type[msgspec.Struct]) -> None:
    page = (DOCS / "protocol.md").read_text()
    section = page.split(f"### `{struct.__name__}` fields", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert documented == list(struct.__struct_fields__)


def test_dead_reasons_are_documented() -> None:
    page = (DOCS / "protocol.md").read_text()
    for values in (wire.DeadReason, wire.JobState, wire.EventKind):
        for value in values:
            assert f"`{value.value}`" in page


def test_the_documented_minimal_job_decodes() -> None:
    job = wire.decode_job(
        b'{"task": "send_email", "args": ["ada@example.com"], "kwargs": {"subject": "hello"}}'
    )
    assert (job.task, job.args, job.kwargs, job.id) == (
        "send_email",
        ["ada@example.com"],
        {"subject": "hello"},
        None,
    )
    with pytest.raises(msgspec.ValidationError, match="unknown field `kwarg`"):
        wire.decode_job(b'{"task": "x", "kwarg": {}}')


def test_schema_output_does_not_depend_on_how_msgspec_formats_it() -> None:
    # msgspec releases differ in docstring indentation and in the order of `anyOf` members.
    raw = {
        "description": "One line.\n\n    Indented second paragraph.\n    ",
        "properties": {"x": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/A"}]}},
    }
    tidy = {
        "description": "One line.\n\nIndented second paragraph.",
        "properties": {"x": {"anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}]}},
    }
    assert wire._canonical(raw) == wire._canonical(tidy) == tidy
