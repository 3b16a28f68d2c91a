"""arq peer: the job functions and the WorkerSettings its CLI loads.

Worker:

    arq benchmarks.arq_app.WorkerSettings --custom-log-dict benchmarks.arq_app.LOG_CONFIG

``max_jobs=100``; everything else is arq's default, notably ``poll_delay=0.5`` s (arq polls
its Redis sorted set, it does not block on it) unless ``BENCH_ARQ_POLL_DELAY`` says
otherwise. Logging is arq's own config at WARNING instead of INFO (arq's default logs two
lines per job), so that every system is measured at the same log level.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from arq.connections import RedisSettings
from arq.logs import default_log_config

from benchmarks.recorder import record

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

LOG_CONFIG = default_log_config(False)
LOG_CONFIG["handlers"]["arq.standard"]["level"] = "WARNING"
LOG_CONFIG["loggers"]["arq"]["level"] = "WARNING"


async def noop(ctx: dict[str, Any], t: float) -> None:
    record(t, time.time())


async def sleep10ms(ctx: dict[str, Any], t: float) -> None:
    start = time.time()
    await asyncio.sleep(0.01)
    record(t, start)


class WorkerSettings:
    functions = [noop, sleep10ms]  # noqa: RUF012
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    max_jobs = 100
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.5"))
