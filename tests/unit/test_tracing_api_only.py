"""OpenTelemetry's API without an SDK: no span is made, but a context that came in a job's
headers is current while the task runs. A process of its own: the tracer provider is global."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import asyncio
from opentelemetry import trace
from aioq import Aarq, Context
from aioq.options import WorkerOptions
from aioq.testing import MemoryBroker
from aioq.worker import Worker

broker = MemoryBroker()
app = Aarq()
app.use_broker(broker)
seen = {}

@app.task
async def probe(ctx: Context) -> None:
    seen[ctx.job_id] = trace.get_current_span().get_span_context().trace_id

async def main() -> None:
    await probe.enqueue()
    await app.connect()
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    data = b'{"id": "foreign-1", "task": "probe"}'
    await broker.jobs.publish("default", data, "foreign-1", "probe", {"traceparent": parent})
    headers = [m.headers for q in broker.stream.queues.values() for m in q.messages.values()]
    print(sorted(h is None for h in headers))
    await Worker(app, options=WorkerOptions.for_tests(burst=True)).run()

asyncio.run(main())
print(sorted((k == "foreign-1", f"{v:032x}") for k, v in seen.items()))
"""


def test_without_an_sdk_only_a_foreign_context_goes_through() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[False, True]"  # the enqueue put no headers; the foreign job has its own
    assert lines[1] == (
        "[(False, '00000000000000000000000000000000'), (True, '4bf92f3577b34da6a3ce929d0e0e4736')]"
    )
