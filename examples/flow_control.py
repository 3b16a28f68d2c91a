"""Flow control: a worker rate limit, a queue paused and resumed, concurrency changed live.

Runs with a local nats-server: ``.venv/bin/python examples/flow_control.py``. The same from the
command line: ``aioq worker examples.flow_control:app --rate-limit 10``, and
``aioq queue pause default --until 09:00`` / ``aioq queue resume default``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aioq import Aarq, BrokerError, Context, Worker
from aioq.embedded import EmbeddedNats

app = Aarq("nats://127.0.0.1:4222", prefix="flow-example")
started: Counter[int] = Counter()
T0 = time.monotonic()


@app.task
async def call_api(ctx: Context, n: int) -> None:
    started[int(time.monotonic() - T0)] += 1  # starts per second since the demo began
    await asyncio.sleep(0.05)


async def demo() -> None:
    # At most 10 job starts in any 1-second window; bursts up to 10.
    worker = Worker(app, concurrency=5, rate_limit=10, rate_interval=1.0, handle_signals=False)
    running = asyncio.create_task(worker.run())
    await app.enqueue_many(call_api.prepare(n) for n in range(40))
    await asyncio.sleep(1.5)

    try:
        await app.pause_queue("default")  # every worker of the queue stops starting its jobs
    except BrokerError as e:  # nats-server before 2.11 has no consumer pause
        print(f"cannot pause: {e}")
    else:
        until = await app.queue_paused_until("default")
        print(f"paused at {time.monotonic() - T0:.1f}s, until {until}")
        await asyncio.sleep(1.0)
        await app.resume_queue("default")
        print(f"resumed at {time.monotonic() - T0:.1f}s")

    worker.set_rate_limit(None)  # lift the limit, and let more run at once
    worker.set_concurrency(20)
    while sum(started.values()) < 40:  # noqa: ASYNC110 - a demo's simple wait
        await asyncio.sleep(0.05)
    worker.stop()
    await running
    for second, count in sorted(started.items()):
        print(f"second {second}: {count} jobs started")


def main() -> int:
    with EmbeddedNats() as server:
        app.use_servers(server.url)
        asyncio.run(demo())
    return 0 if sum(started.values()) == 40 else 1


if __name__ == "__main__":
    sys.exit(main())
