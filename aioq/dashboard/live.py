"""The dashboard's live state: worker liveness, recent events, throughput, and the SSE feed.

One `LiveHub` per dashboard follows the workers bucket (a KV watch) and the lifecycle events
(one core NATS subscription), whatever the number of open pages. Every `refresh` seconds it
sends the open pages what changed; queue counts are read then, once for all pages, and only
while a page is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from aioq.dashboard.data import DashboardData, WorkerChange
from aioq.inspection import QueueStats, by_level
from aioq.wire import Event, WorkerInfo

__all__ = ["LiveHub", "WorkerTracker", "liveness"]

log = logging.getLogger("aioq.dashboard")

#: Width of one throughput slot, and how many slots the chart shows.
SLOT_S: Final = 10.0
SLOTS: Final = 30
#: A heartbeat overdue by this many intervals makes a worker stale.
STALE_AFTER: Final = 1.5
_DEFAULT_INTERVAL_S: Final = 10.0
_RECENT_EVENTS: Final = 200
_TIMELINE_JOBS: Final = 5000
_TIMELINE_EVENTS: Final = 50
_RETRYING_JOBS: Final = 100_000
_CLIENT_BACKLOG: Final = 64
#: Events one update sends at most (the newest): pages show the last 20.
_EVENTS_PER_UPDATE: Final = 50
_FINISHED: Final = frozenset({"succeeded", "failed", "expired", "aborted"})


def liveness(age: float, interval: float, ttl: float) -> str:
    """``alive``, ``stale`` (heartbeat overdue) or ``dead`` (expired) for a heartbeat `age`."""
    if age >= ttl:
        return "dead"
    if age > STALE_AFTER * interval:
        return "stale"
    return "alive"


@dataclass(slots=True)
class _Tracked:
    info: WorkerInfo
    seen: float  # when this dashboard received the heartbeat (local clock)
    interval: float | None = None  # observed time between two heartbeats
    removed_at: float | None = None


class WorkerTracker:
    """Workers as the bucket's watch reports them, with dead ones kept for `keep_dead` s."""

    def __init__(self, keep_dead: float = 600.0) -> None:
        self.keep_dead = keep_dead
        self.ttl: float | None = None
        self._workers: dict[str, _Tracked] = {}

    def apply(self, change: WorkerChange) -> None:
        """Take one heartbeat or removal."""
        known = self._workers.get(change.key)
        if change.info is None:
            if known is not None and known.removed_at is None:
                known.removed_at = change.at
            return
        seen = change.at
        if known is None:
            # A heartbeat from before this dashboard started: as old as the worker says.
            seen = min(change.at, change.info.heartbeat_at)
            self._workers[change.key] = _Tracked(change.info, seen)
            return
        delta = change.info.heartbeat_at - known.info.heartbeat_at
        if delta > 0 and known.removed_at is None:
            known.interval = delta if known.interval is None else min(known.interval, delta)
        known.info, known.seen, known.removed_at = change.info, seen, None

    def _interval(self, tracked: _Tracked) -> float:
        if tracked.interval is not None:
            return tracked.interval
        return self.ttl / 3 if self.ttl else _DEFAULT_INTERVAL_S

    def views(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every worker as the API shows it, sorted by host and pid; drops long-dead ones."""
        now = time.time() if now is None else now
        dead_at: float | None
        views: list[dict[str, Any]] = []
        for key, tracked in list(self._workers.items()):
            interval = self._interval(tracked)
            ttl = self.ttl or 3 * interval
            age = now - tracked.seen
            if tracked.removed_at is not None:
                status, dead_at = "dead", tracked.removed_at
            else:
                status = liveness(age, interval, ttl)
                dead_at = tracked.seen + ttl if status == "dead" else None
            if dead_at is not None and now - dead_at > self.keep_dead:
                del self._workers[key]
                continue
            views.append(_worker_view(tracked.info, status, age, dead_at, now))
        views.sort(key=lambda w: (w["hostname"], w["pid"], w["id"]))
        return views


def _worker_view(
    info: WorkerInfo, status: str, age: float, dead_at: float | None, now: float
) -> dict[str, Any]:
    view: dict[str, Any] = msgspec.to_builtins(info)
    view.update(
        status=status,
        age=round(age, 3),
        dead_at=dead_at,
        uptime=round((dead_at or now) - info.started_at, 3),
    )
    return view


class LiveHub:
    """Follows workers and events for one dashboard, and feeds every open page."""

    def __init__(self, data: DashboardData, refresh: float = 1.0, keep_dead: float = 600.0):
        self.data = data
        self.refresh = refresh
        self.tracker = WorkerTracker(keep_dead)
        self.recent: deque[dict[str, Any]] = deque(maxlen=_RECENT_EVENTS)
        self._timelines: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._slots: dict[str, deque[tuple[int, int]]] = {}
        self._retrying: dict[str, set[str]] = {}
        self._clients: set[asyncio.Queue[bytes]] = set()
        self._pending_events: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._last: dict[str, bytes] = {}
        self._queues: tuple[float, list[dict[str, Any]]] | None = None
        self._queues_lock = asyncio.Lock()
        self._events_ready = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        return bool(self._tasks)

    async def start(self) -> None:
        """Connect and start following workers and events."""
        await self.data.connect()
        self._tasks = [
            asyncio.create_task(self._follow_workers(), name="aioq-dashboard-workers"),
            asyncio.create_task(self._follow_events(), name="aioq-dashboard-events"),
            asyncio.create_task(self._tick(), name="aioq-dashboard-tick"),
        ]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await self._events_ready.wait()

    async def stop(self) -> None:
        """Stop following; open feeds end."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in list(self._clients):
            with contextlib.suppress(asyncio.QueueFull):
                client.put_nowait(b"")

    # -- what the pages read ---------------------------------------------------------------

    def workers(self) -> list[dict[str, Any]]:
        """Every worker known, with its liveness."""
        return self.tracker.views()

    def timeline(self, job_id: str) -> list[dict[str, Any]]:
        """The events of `job_id` this dashboard has seen, oldest first."""
        return sorted(self._timelines.get(job_id, []), key=lambda e: float(e["at"]))

    async def queues(self, max_age: float | None = None) -> list[dict[str, Any]]:
        """Every queue's counts, throughput and worker count (cached for `max_age` s)."""
        max_age = self.refresh if max_age is None else max_age
        async with self._queues_lock:
            now = time.monotonic()
            if self._queues is not None and now - self._queues[0] < max_age:
                return self._queues[1]
            stats = await self.data.queues()
            workers = [w for w in self.tracker.views() if w["status"] != "dead"]
            views = [self._queue_view(s, workers) for s in stats]
            self._queues = (now, views)
            return views

    def forget_queues(self) -> None:
        """Read the queue counts afresh next time (after an action changed them)."""
        self._queues = None

    def _queue_view(self, stats: QueueStats, workers: list[dict[str, Any]]) -> dict[str, Any]:
        retrying = min(len(self._retrying.get(stats.name, ())), stats.in_flight)
        limit, interval = self.data.rate_limit(stats.name)
        serving = [w for w in workers if not w["queues"] or stats.name in w["queues"]]
        return {
            "name": stats.name,
            "queued": stats.pending,
            "by_level": by_level(stats),
            "running": stats.in_flight - retrying,
            "retrying": retrying,
            "in_flight": stats.in_flight,
            "delayed": stats.delayed,
            "waiting": stats.waiting,
            "dead": stats.dead,
            "paused": stats.paused,
            "paused_until": stats.paused_until,
            "rate_limit": limit,
            "rate_interval": interval,
            "max_running": stats.max_running,
            "history": stats.history,
            "workers": len(serving),
            "throughput": self.throughput(stats.name),
        }

    def throughput(self, queue: str, now: float | None = None) -> list[int]:
        """Jobs finished per `SLOT_S` seconds over the last `SLOTS` slots, oldest first."""
        current = int((time.time() if now is None else now) // SLOT_S)
        counts = dict(self._slots.get(queue, ()))
        return [counts.get(slot, 0) for slot in range(current - SLOTS + 1, current + 1)]

    # -- the feed --------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[bytes]:
        """A new page's feed; the current workers and queues come first."""
        client: asyncio.Queue[bytes] = asyncio.Queue(_CLIENT_BACKLOG)
        for message in self._last.values():
            client.put_nowait(message)
        self._clients.add(client)
        return client

    def unsubscribe(self, client: asyncio.Queue[bytes]) -> None:
        """Forget a closed page's feed."""
        self._clients.discard(client)

    @property
    def clients(self) -> int:
        """Open feeds."""
        return len(self._clients)

    def _broadcast(self, name: str, payload: Any, keep: bool = True) -> None:
        message = b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(payload) + b"\n\n"
        if keep:
            self._last[name] = message
        for client in self._clients:
            with contextlib.suppress(asyncio.QueueFull):  # a slow page skips an update
                client.put_nowait(message)

    def _changed(self, name: str, payload: Any) -> bool:
        message = b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(payload) + b"\n\n"
        return self._last.get(name) != message

    async def _tick(self) -> None:
        while True:
            try:
                await self._tick_once()
            except Exception as e:
                log.warning("dashboard refresh failed: %s", e)
            await asyncio.sleep(self.refresh)

    async def _tick_once(self) -> None:
        workers = self.tracker.views()
        if self._changed("workers", workers):
            self._broadcast("workers", workers)
        if self._pending_events:
            events, self._pending_events = self._pending_events[-_EVENTS_PER_UPDATE:], []
            self._broadcast("events", events, keep=False)
        if self._clients:
            queues = await self.queues()
            if self._changed("queues", queues):
                self._broadcast("queues", queues)

    # -- followers -------------------------------------------------------------------------

    async def _follow_workers(self) -> None:
        while True:
            try:
                self.tracker.ttl = await self.data.workers_ttl()
                async for change in self.data.watch_workers():
                    if change is not None:
                        self.tracker.apply(change)
            except Exception as e:
                log.warning("dashboard: watching the workers bucket failed: %s", e)
            await asyncio.sleep(max(self.refresh, 1.0))

    async def _follow_events(self) -> None:
        while True:
            try:
                async with self.data.events() as stream:
                    self._events_ready.set()
                    async for event in stream:
                        self.note(event)
            except Exception as e:
                log.warning("dashboard: following events failed: %s", e)
            await asyncio.sleep(max(self.refresh, 1.0))

    def note(self, event: Event, now: float | None = None) -> None:
        """Take one lifecycle event into the counts, the timelines and the feed."""
        item: dict[str, Any] = msgspec.to_builtins(event)
        self.recent.append(item)
        self._pending_events.append(item)
        del self._pending_events[:-_EVENTS_PER_UPDATE]
        timeline = self._timelines.setdefault(event.id, [])
        self._timelines.move_to_end(event.id)
        timeline.append(item)
        del timeline[:-_TIMELINE_EVENTS]
        while len(self._timelines) > _TIMELINE_JOBS:
            self._timelines.popitem(last=False)
        kind = str(event.kind)
        retrying = self._retrying.setdefault(event.queue, set())
        if kind == "retrying":
            if len(retrying) < _RETRYING_JOBS:
                retrying.add(event.id)
        else:
            retrying.discard(event.id)
        if kind in _FINISHED:
            slot = int((time.time() if now is None else now) // SLOT_S)
            slots = self._slots.setdefault(event.queue, deque(maxlen=SLOTS))
            if slots and slots[-1][0] == slot:
                slots[-1] = (slot, slots[-1][1] + 1)
            else:
                slots.append((slot, 1))
