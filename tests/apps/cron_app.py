"""A 1-second repeatable job for the scheduler process tests (``tests/test_scheduler_procs.py``).

Reads ``AIOQ_TEST_PREFIX`` and ``AIOQ_TEST_EVENTS`` like ``tests/apps/proc_app.py``; every tick
appends a ``start`` event with the tick's job id.
"""

from __future__ import annotations

import os

from aioq import Aarq, Context

from .proc_app import record

app = Aarq(prefix=os.environ.get("AIOQ_TEST_PREFIX", "aioqtest"))


@app.task
async def tick(ctx: Context) -> None:
    record("start", ctx)


app.add_repeatable(tick, every=1, name="second")
