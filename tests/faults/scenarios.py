"""The fault scenarios: each runs real processes on loopback and returns an `Outcome`.

Every scenario takes a `Lab` (a fresh server on its own store) and a `Size`: ``ci`` keeps it
to seconds and hundreds of jobs, ``full`` is the size the runner uses.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nats

from tests.helpers import eventually
from tests.procs import Proc

from .checker import Report
from .harness import Lab
from .history import load
from .logs import outage_problems

# The scheduler's scan interval (the worker's default): the bound on a lost delayed wake-up.
SCAN_INTERVAL_S = 1.0
# A worker must run jobs again this soon after a fault ended (a silent link is noticed by the
# client's pings within about 15 s).
RESUME_BOUND_S = 30.0
# A delayed job may start this much before its due time (clock resolution, not a delay).
EARLY_TOLERANCE_S = 0.05
# The client's pause between reconnect attempts: a worker is back this long after its server.
RECONNECT_WAIT_S = 1.0
# How late a delayed job may start after its due time, or after the workers reconnected when
# it was not started before the server went down: the scan interval (which bounds a lost
# wake-up) plus room for a loaded machine.
DELAYED_LATE_S = SCAN_INTERVAL_S + 0.5


@dataclass(frozen=True)
class Size:
    """How big a scenario runs."""

    full: bool = False

    def pick(self, ci: int, full: int) -> int:
        return full if self.full else ci


@dataclass
class Outcome:
    """A scenario's checked history plus the scenario's own checks."""

    name: str
    report: Report
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.report.ok and not self.problems

    def summary(self) -> str:
        return "; ".join([self.report.summary(), *self.problems, *self.notes])


Scenario = Callable[[Lab, Size], Awaitable[Outcome]]


async def _drained(lab: Lab, timeout: float, problems: list[str], **kw: bool) -> None:
    left = await lab.drain(timeout, **kw)
    if left:
        problems.append(f"{len(left)} jobs not done after {timeout:g}s of draining")


async def _resumed(lab: Lab, procs: list[Proc], since: float, problems: list[str]) -> float:
    """Feed jobs until each of `procs` ran one started after `since`; the seconds it took."""
    waiting = {p.pid for p in procs}
    deadline = time.monotonic() + RESUME_BOUND_S
    for round_ in range(1000):
        ran = {e.pid for e in load(lab.history_dir).completions if e.start > since}
        waiting -= ran
        if not waiting or time.monotonic() > deadline:
            break
        await lab.produce(40, seconds=0.2, prefix=f"probe{round_}-")
        await _drained(lab, 30, problems)
        await asyncio.sleep(0.5)
    if waiting:
        problems.append(f"workers {sorted(waiting)} ran nothing after the fault ended")
    firsts: dict[int, float] = {}
    for e in load(lab.history_dir).completions:
        if e.start > since and e.pid in {p.pid for p in procs}:
            firsts[e.pid] = min(e.start, firsts.get(e.pid, e.start))
    return max(firsts.values(), default=since) - since


# -- worker faults ---------------------------------------------------------------------------


async def worker_sigkill_loop(lab: Lab, size: Size) -> Outcome:
    """Three workers; a random one is SIGKILLed every ~1.5 s and started again."""
    jobs, kills = size.pick(400, 5000), size.pick(4, 30)
    for _ in range(3):
        lab.worker(concurrency=20)
    await lab.workers_started()
    producer = asyncio.create_task(lab.produce(jobs, seconds=0.1, rate=jobs / (kills * 1.5)))
    rng = random.Random(1)
    for _ in range(kills):
        await asyncio.sleep(1.5)
        victim = rng.choice(lab.running_workers())
        lab.signal_worker(victim, signal.SIGKILL)
        await victim.wait_exit(10)
        await lab.workers_started(lab.worker(concurrency=20))
    await producer
    problems: list[str] = []
    await _drained(lab, 60, problems)
    if not await lab.consumer_idle():
        problems.append("the consumer still has pending or unacknowledged jobs")
    return Outcome("worker SIGKILL loop", await lab.finish(), problems)


async def worker_sigstop(lab: Lab, size: Size) -> Outcome:
    """Worker A is SIGSTOPped with jobs running for 3x ack_wait, then SIGCONTed."""
    jobs = size.pick(200, 2000)
    a, b = lab.worker(concurrency=20), lab.worker(concurrency=20)
    await lab.workers_started()
    producer = asyncio.create_task(lab.produce(jobs, seconds=0.3, rate=jobs / 4))
    await eventually(lambda: _started_on(lab, a.pid) >= 5, 20, what="jobs running on worker A")
    await lab.pause_worker(a, 3 * lab.ack_wait)
    resumed = time.time()
    await producer
    problems: list[str] = []
    await _drained(lab, 60, problems)
    report = await lab.finish()
    if a.returncode not in (0, None):
        problems.append(f"worker A exited with {a.returncode} after SIGCONT")
    after = [e for e in load(lab.history_dir).completions if e.pid == a.pid and e.end > resumed]
    notes = [f"A completed {len(after)} runs after SIGCONT; B pid {b.pid}"]
    return Outcome("worker SIGSTOP > ack_wait, SIGCONT", report, problems, notes)


def _started_on(lab: Lab, pid: int) -> int:
    path = lab.history_dir / f"exec-{pid}.jsonl"
    return path.read_bytes().count(b'"start"') if path.exists() else 0


async def worker_sigterm(lab: Lab, size: Size, grace: float) -> Outcome:
    """SIGTERM a worker running long jobs; another worker takes what it hands back."""
    jobs, length = size.pick(40, 200), 2.0
    a = lab.worker(concurrency=20, grace=grace)
    await lab.workers_started(a)
    await lab.produce(jobs, seconds=length)
    await eventually(lambda: _started_on(lab, a.pid) >= 20, 20, what="20 jobs running on worker A")
    sent = lab.signal_worker(a, signal.SIGTERM)
    problems: list[str] = []
    code = await a.wait_exit(grace + length + 10)
    took = time.time() - sent
    if code != 0:
        problems.append(f"worker exited with {code} on SIGTERM")
    if took > grace + 3 and took > length + 3:
        problems.append(f"worker took {took:.1f}s to exit (grace {grace:g}s)")
    await lab.workers_started(lab.worker(concurrency=50, grace=grace))
    await _drained(lab, 60, problems)
    report = await lab.finish()
    if report.duplicates:
        problems.append(f"{len(report.duplicates)} jobs ran twice after a graceful stop")
    name = f"worker SIGTERM, long jobs, grace {grace:g}s"
    return Outcome(name, report, problems, [f"exit after {took:.1f}s"])


async def worker_sigterm_grace(lab: Lab, size: Size) -> Outcome:
    return await worker_sigterm(lab, size, grace=10.0)


async def worker_sigterm_no_grace(lab: Lab, size: Size) -> Outcome:
    return await worker_sigterm(lab, size, grace=0.0)


async def poison_job(lab: Lab, size: Size) -> Outcome:
    """A job that SIGKILLs its worker every time, among normal jobs; workers are restarted."""
    jobs = size.pick(100, 500)
    for _ in range(2):
        lab.worker(concurrency=10)
    await lab.workers_started()
    await lab.enqueue("poison-1", task="poison")
    producer = asyncio.create_task(lab.produce(jobs, seconds=0.5, rate=jobs / 5))
    restarts, problems = 0, []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and lab.outstanding() and restarts <= 12:
        for proc in [p for p in lab.workers if p.returncode is not None and p.returncode != 0]:
            lab.workers.remove(proc)
            lab.recorder.fault("crash", f"worker {proc.pid}", time.time())
            lab.worker(concurrency=10)
            restarts += 1
        await lab.read_dead()
        await asyncio.sleep(0.2)
    await producer
    await _drained(lab, 30, problems, dead_letters=True)
    report = await lab.finish(expected_dead={"poison-1"})
    starts = sum(1 for s in load(lab.history_dir).starts if s["job"] == "poison-1")
    if report.dead.get("poison-1") != "crashed":
        problems.append(f"poison job not dead-lettered as crashed: {report.dead.get('poison-1')}")
    if starts > 1 + 3:  # retries + the spare deliveries a crash may take
        problems.append(f"poison job started {starts} times")
    notes = [f"poison started {starts} times, {restarts} worker restarts"]
    return Outcome("poison job (kills its worker)", report, problems, notes)


# -- hostile input ---------------------------------------------------------------------------


def hostile_payloads() -> list[tuple[str, bytes, dict[str, str] | None]]:
    """(label, body, headers) of jobs no worker may run or crash on."""
    rng = random.Random(7)
    deep = b'{"task":"work","args":' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    payloads: list[tuple[str, bytes, dict[str, str] | None]] = [
        (f"random-{i}", rng.randbytes(rng.randint(1, 400)), None) for i in range(5)
    ]
    payloads += [
        ("empty", b"", None),
        ("bad-utf8", b'{"task":"work","kwargs":{"pad":"\xff\xfe\xc3("}}', None),
        ("array", b"[1,2,3]", None),
        ("string", b'"work"', None),
        ("null", b"null", None),
        ("number", b"42", None),
        ("nan", b'{"task":"work","kwargs":{"seconds":NaN}}', None),
        ("infinity", b'{"task":"work","kwargs":{"seconds":Infinity}}', None),
        ("deep", deep, None),
        ("task-int", b'{"task":5}', None),
        ("args-object", b'{"task":"work","args":{"a":1}}', None),
        ("kwargs-array", b'{"task":"work","kwargs":[1]}', None),
        ("id-int", b'{"task":"work","id":123}', None),
        ("seconds-str", b'{"task":"work","kwargs":{"seconds":"x"}}', None),
        ("unknown-task", b'{"task":"no_such_task"}', None),
        ("extra-field", b'{"task":"work","bogus":1}', None),
        ("big", b'{"task":"work","kwargs":{"pad":"' + b"x" * 900_000 + b'"},"x":', None),
    ]
    return payloads


def odd_header_jobs() -> list[tuple[str, bytes, dict[str, str]]]:
    """Valid jobs with odd headers: they must run normally."""
    headers = [
        {"Aioq-Attempt": "999"},
        {"Aioq-Run-At": "not a time"},
        {"X-Long": "h" * 4000},
        {"Aioq-Task": "poison"},
    ]
    return [
        (f"odd-header-{i}", b'{"task":"work","id":"odd-header-%d"}' % i, h)
        for i, h in enumerate(headers)
    ]


async def hostile_barrage(lab: Lab, size: Size) -> Outcome:
    """Hostile payloads published raw, then normal jobs: all normal ones run, none crash it."""
    worker = lab.worker(concurrency=20)
    await lab.workers_started()
    app = await lab.app()
    subject = app.names.job_subject("default")
    nc = await nats.connect(lab.url)
    stored, rejected = 0, []
    try:
        js = nc.jetstream()
        rounds = size.pick(1, 5)
        for r in range(rounds):
            for label, body, headers in hostile_payloads():
                hdrs = {"Nats-Msg-Id": f"hostile-{r}-{label}", **(headers or {})}
                try:
                    await js.publish(subject, body, headers=hdrs)
                    stored += 1
                except Exception as e:
                    rejected.append(f"{label}: {type(e).__name__}")
        for label, body, headers in odd_header_jobs():
            lab.recorder.invoke(label)
            await js.publish(subject, body, headers={"Nats-Msg-Id": label, **headers})
            lab.recorder.ack(label, duplicate=False)
            lab.acked.add(label)
        oversize = b"x" * (nc.max_payload + 1)
        try:
            await js.publish(subject, oversize)
            problems = ["a body above max_payload was accepted"]
        except Exception as e:
            problems = []
            rejected.append(f"oversize: {type(e).__name__}")
    finally:
        await nc.close()
    await lab.produce(size.pick(200, 2000), seconds=0.01)
    await _drained(lab, 60, problems, dead_letters=True)
    deadline = time.monotonic() + 30
    while len(await lab.read_dead()) < stored and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    if worker.returncode is not None:
        problems.append(f"the worker died (exit {worker.returncode})")
    hostile_dead = {k: v for k, v in lab.dead.items() if k not in lab.acked}
    if len(hostile_dead) < stored:
        problems.append(f"{stored} hostile payloads stored, {len(hostile_dead)} dead letters")
    report = await lab.finish(expected_dead=hostile_dead)
    reasons = Counter(hostile_dead.values())
    notes = [f"{stored} stored, dead letters by reason {dict(reasons)}, rejected {rejected}"]
    return Outcome("hostile payload barrage", report, problems, notes)


# -- server faults ---------------------------------------------------------------------------


async def server_restart(
    lab: Lab, size: Size, sig: signal.Signals, down: float = 1.0, name: str = ""
) -> Outcome:
    """Restart nats-server on the same store while the producer runs; workers keep going.

    Each worker says once that its connection is lost and once that it is back.
    """
    jobs = size.pick(400, 10_000)
    a, b = lab.worker(concurrency=20), lab.worker(concurrency=20)
    await lab.workers_started()
    duration = size.pick(4, 20)
    producer = asyncio.create_task(lab.produce(jobs, seconds=0.05, rate=jobs / duration))
    await asyncio.sleep(duration * 0.4)
    await lab.restart_server(sig, down=down)
    restarted = time.time()
    await producer
    problems: list[str] = []
    await _drained(lab, 60, problems)
    resumed = await _resumed(lab, [a, b], restarted, problems)
    problems += outage_problems([a, b], outages=1)
    report = await lab.finish()
    notes = [f"producer retries: {lab.enqueue_failures}; workers resumed within {resumed:.1f}s"]
    name = name or f"nats-server {sig.name} + restart, producer running"
    return Outcome(name, report, problems, notes)


async def server_sigterm(lab: Lab, size: Size) -> Outcome:
    return await server_restart(lab, size, signal.SIGTERM)


async def server_sigkill(lab: Lab, size: Size) -> Outcome:
    return await server_restart(lab, size, signal.SIGKILL)


async def server_down_long(lab: Lab, size: Size) -> Outcome:
    """The server stays down long enough for many reconnect attempts: each said once."""
    down = size.pick(5, 15)
    name = f"nats-server down {down}s, producer running"
    return await server_restart(lab, size, signal.SIGKILL, down=down, name=name)


async def backlog_with_kills(lab: Lab, size: Size) -> Outcome:
    """A large backlog enqueued first, then drained by workers of which one is killed often."""
    jobs = size.pick(2000, 50_000)
    await lab.produce(jobs, window=128)
    for _ in range(3):
        lab.worker(concurrency=50)
    await lab.workers_started()
    rng = random.Random(3)
    kills = 0
    deadline = time.monotonic() + size.pick(20, 300)
    while lab.outstanding() and time.monotonic() < deadline and kills < 100:
        await asyncio.sleep(3.0)
        victim = rng.choice(lab.running_workers())
        lab.signal_worker(victim, signal.SIGKILL)
        kills += 1
        await victim.wait_exit(10)
        await lab.workers_started(lab.worker(concurrency=50))
    problems: list[str] = []
    await _drained(lab, size.pick(60, 600), problems)
    report = await lab.finish()
    return Outcome(f"{jobs:,}-job backlog with kills", report, problems, [f"{kills} kills"])


async def delayed_across_restart(lab: Lab, size: Size) -> Outcome:
    """Delayed jobs whose due times span a server restart: none early, none twice, bounded late."""
    jobs, spread = size.pick(100, 1000), size.pick(6, 30)
    for _ in range(2):
        lab.worker(concurrency=20)
    await lab.workers_started()
    app = await lab.app()
    base = time.time() + 1.0
    due = {f"d{i:05d}": base + spread * i / jobs for i in range(jobs)}

    async def one(job_id: str) -> None:
        when = datetime.fromtimestamp(due[job_id], UTC)
        lab.recorder.invoke(job_id)
        job = await app.get_task("work").with_options(job_id=job_id, run_at=when).enqueue()
        lab.recorder.ack(job_id, job.duplicate)
        lab.acked.add(job_id)

    await asyncio.gather(*(one(j) for j in due))
    await asyncio.sleep(max(0.0, base + spread * 0.4 - time.time()))
    outage_start = time.time()
    await lab.restart_server(signal.SIGTERM, down=1.0)
    outage_end = time.time()
    problems: list[str] = []
    await _drained(lab, spread + 60, problems)
    report = await lab.finish()
    history = load(lab.history_dir)
    first_start: dict[str, float] = {}
    for e in history.completions:
        first_start[e.job] = min(e.start, first_start.get(e.job, e.start))
    early = [j for j, s in first_start.items() if s < due[j] - EARLY_TOLERANCE_S]
    # A job not started when the server went down can start only once the workers reconnected.
    back = outage_end + RECONNECT_WAIT_S
    lateness = {
        job: start - (due[job] if start < outage_start else max(due[job], back))
        for job, start in first_start.items()
    }
    late = sorted(j for j, seconds in lateness.items() if seconds > DELAYED_LATE_S)
    if early:
        problems.append(f"{len(early)} delayed jobs started early: {early[:3]}")
    if report.duplicates:
        problems.append(f"{len(report.duplicates)} delayed jobs ran twice")
    if late:
        worst = max(lateness.values())
        problems.append(
            f"{len(late)} jobs later than {DELAYED_LATE_S:g}s (worst {worst:.2f}s): {late[:3]}"
        )
    notes = [f"lateness max {max(lateness.values()):.2f}s" if lateness else "nothing ran"]
    return Outcome("delayed jobs across a server restart", report, problems, notes)


# -- network faults --------------------------------------------------------------------------


async def partition(lab: Lab, size: Size, mode: str = "reset") -> Outcome:
    """Worker A reaches the server through a proxy whose link is cut for 3x ack_wait."""
    jobs = size.pick(300, 3000)
    proxy = await lab.start_proxy()
    a = lab.worker(concurrency=20, url=proxy.url)
    b = lab.worker(concurrency=20)
    await lab.workers_started()
    producer = asyncio.create_task(lab.produce(jobs, seconds=0.2, rate=jobs / 6))
    await eventually(lambda: _started_on(lab, a.pid) >= 5, 20, what="jobs running on worker A")
    await lab.partition(3 * lab.ack_wait, mode)
    restored = time.time()
    await producer
    problems: list[str] = []
    await _drained(lab, 60, problems)
    resumed = await _resumed(lab, [a], restored, problems)
    problems += outage_problems([a], outages=1) + outage_problems([b], outages=0)
    report = await lab.finish()
    reconnects = a.log().count("nats: reconnected")
    notes = [f"A resumed {resumed:.1f}s after the restore, logged 'reconnected' {reconnects}x"]
    name = f"partition worker<->server ({mode})"
    return Outcome(name, report, problems, notes)


async def partition_reset(lab: Lab, size: Size) -> Outcome:
    return await partition(lab, size, "reset")


async def partition_blackhole(lab: Lab, size: Size) -> Outcome:
    return await partition(lab, size, "blackhole")


async def partition_stale(lab: Lab, size: Size) -> Outcome:
    return await partition(lab, size, "stale")


async def slow_consumer(lab: Lab, size: Size) -> Outcome:
    """Large jobs (~200 KB) and slow handlers: the worker must not be cut off, nothing lost."""
    jobs = size.pick(150, 1000)
    worker = lab.worker(concurrency=50)
    await lab.workers_started()
    await lab.produce(jobs, seconds=1.0, pad="p" * 200_000, window=16)
    problems: list[str] = []
    await _drained(lab, 120, problems)
    report = await lab.finish()
    log = worker.log()
    if "slow consumer" in log.lower():
        problems.append("the worker was flagged as a slow consumer")
    return Outcome("slow consumer (200 KB jobs, slow handler)", report, problems)


async def clock_skew(lab: Lab, size: Size) -> Outcome:
    """Workers whose clocks are 10 min ahead and behind stay listed; a killed one leaves."""
    normal = lab.worker(concurrency=10)
    ahead = lab.worker(concurrency=10, env={"AIOQ_FAULT_CLOCK_SKEW": "600"})
    behind = lab.worker(concurrency=10, env={"AIOQ_FAULT_CLOCK_SKEW": "-600"})
    await lab.workers_started()
    app = await lab.app()
    problems: list[str] = []

    async def listed() -> set[int]:
        return {w.info.pid for w in await app.workers()}

    await lab.produce(size.pick(200, 2000), seconds=0.05)
    await _drained(lab, 60, problems)
    killed = lab.signal_worker(normal, signal.SIGKILL)
    gone_after: float | None = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pids = await listed()
        if not {ahead.pid, behind.pid} <= pids:
            problems.append(f"a skewed worker dropped out of the worker list: {pids}")
            break
        if normal.pid not in pids and gone_after is None:
            gone_after = time.time() - killed
        if gone_after is not None and time.time() - killed > 4:
            break
        await asyncio.sleep(0.2)
    if gone_after is None:
        problems.append("the killed worker is still listed after 10 s")
    elif gone_after > 1.5 + 2:  # the bucket TTL (3 beats of 0.5 s) plus slack
        problems.append(f"the killed worker stayed listed {gone_after:.1f}s")
    ran = {e.pid for e in load(lab.history_dir).completions}
    if not {ahead.pid, behind.pid} <= ran:
        problems.append("a skewed worker ran no job")
    report = await lab.finish()
    notes = [f"killed worker unlisted after {gone_after or -1:.1f}s"]
    return Outcome("clock skew +-10 min between workers", report, problems, notes)


async def consumer_deleted(lab: Lab, size: Size) -> Outcome:
    """The queue's consumer is deleted under a running worker: it is recreated, said once."""
    worker = lab.worker(concurrency=20)
    await lab.workers_started()
    app = await lab.app()
    producer = asyncio.create_task(lab.produce(size.pick(200, 2000), seconds=0.05, rate=100))
    await asyncio.sleep(0.5)
    nc = await nats.connect(lab.url)
    try:
        moment = time.time()
        await nc.jetstream().delete_consumer(app.names.jobs_stream, app.names.consumer("default"))
        lab.recorder.fault("consumer deleted", "default", moment)
    finally:
        await nc.close()
    await producer
    problems: list[str] = []
    await _drained(lab, 60, problems)
    report = await lab.finish()
    said = worker.log().count("its consumer is gone")
    if said != 1:
        problems.append(f"the worker said its consumer is gone {said} times (want 1)")
    return Outcome("consumer deleted under a worker", report, problems)


SCENARIOS: dict[str, Scenario] = {
    "worker-sigkill-loop": worker_sigkill_loop,
    "worker-sigstop": worker_sigstop,
    "worker-sigterm-grace": worker_sigterm_grace,
    "worker-sigterm-no-grace": worker_sigterm_no_grace,
    "server-sigterm": server_sigterm,
    "server-sigkill": server_sigkill,
    "server-down-long": server_down_long,
    "poison": poison_job,
    "hostile": hostile_barrage,
    "backlog": backlog_with_kills,
    "delayed-restart": delayed_across_restart,
    "partition-reset": partition_reset,
    "partition-blackhole": partition_blackhole,
    "partition-stale": partition_stale,
    "slow-consumer": slow_consumer,
    "clock-skew": clock_skew,
    "consumer-deleted": consumer_deleted,
}
