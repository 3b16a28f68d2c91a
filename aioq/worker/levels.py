"""A queue's jobs over its priority levels: higher levels first, lower ones at their share.

Default-level jobs sit on the queue's own consumer, which is always pulled. Each other level
in use has a consumer of its own (`aioq.naming.Names.priority_subject`). A worker learns
which levels are in use from the broker: at start, the levels that have jobs stored; later,
a watch on the levels it does not pull hears the first job stored on one (whoever published
it). A level it pulled that has no job stored any more is dropped and watched again. So a
queue whose jobs never use priorities is pulled exactly as without them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, Final

from aioq.backend import Delivery, Jobs, JobSource, LevelWatch
from aioq.options import QueueOptions
from aioq.priority import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY, Shares
from aioq.worker.draining import hand_back

__all__ = ["LeveledSource", "open_queue"]

# Every level a job can be stored on, the default's own-subject form (``p.5``) included.
_ALL_LEVELS: Final = frozenset(range(MIN_PRIORITY, MAX_PRIORITY + 1))
# How often a level that came back short is checked for jobs still stored (a stream read).
_CHECK_EVERY_S: Final = 1.0
# The queue's own consumer, among the level keys.
_OWN: Final = -1


async def open_queue(jobs: Jobs, queue: str, options: QueueOptions) -> LeveledSource:
    """Open the consumers of `queue` a worker pulls: its own, and those of levels in use."""
    own = await jobs.open_source(queue, options)
    source = LeveledSource(jobs, queue, options, own)
    try:
        await source.start()
    except BaseException:
        await source.close()
        raise
    return source


class LeveledSource:
    """The `JobSource` of one queue over its own consumer and its levels' consumers."""

    def __init__(self, jobs: Jobs, queue: str, options: QueueOptions, own: JobSource) -> None:
        self._jobs = jobs
        self._queue = queue
        self._options = options
        self._own = own
        #: The levels pulled besides the queue's own consumer.
        self.levels: dict[int, JobSource] = {}
        self._heard: set[int] = set()
        self._short: set[int] = set()
        self._checked = 0.0
        self._wake = asyncio.Event()
        self._watch: LevelWatch | None = None
        self._shares: Shares[int] = Shares()

    async def start(self) -> None:
        """Watch every level, then pull those that have jobs stored already."""
        self._watch = await self._jobs.watch_levels(self._queue, self._hear)
        await self._watch.watch(_ALL_LEVELS)
        self._heard.update(await self._jobs.levels(self._queue))

    def _hear(self, level: int) -> None:
        self._heard.add(level)
        self._wake.set()

    async def fetch_now(self, count: int) -> Sequence[Delivery]:
        """Up to `count` jobs available now, split between the levels by their shares."""
        if self._heard:
            await self._activate()
        if not self.levels:
            return await self._own.fetch_now(count)
        deliveries = await self._fetch_levels(count)
        await self._drop_empty()
        return deliveries

    async def _fetch_levels(self, count: int) -> list[Delivery]:
        levels = {_OWN: DEFAULT_PRIORITY, **{level: level for level in self.levels}}
        asked = {k: n for k, n in self._shares.plan(levels, count).items() if n}
        batches = await _gather([self._source(k).fetch_now(n) for k, n in asked.items()])
        got = dict(zip(asked, batches, strict=True))
        short = count - sum(len(d) for d in got.values())
        turns = {k: max(n, len(got[k])) for k, n in asked.items()}
        self._short.update(k for k, n in asked.items() if len(got[k]) < n and k != _OWN)
        # What an empty level left goes to the others, highest level first.
        for key in sorted(levels, key=lambda k: -levels[k]):
            if short <= 0:
                break
            if key in asked and len(got[key]) < asked[key]:
                continue
            more = await _gather([self._source(key).fetch_now(short)], got.values())
            got[key] = [*got.get(key, ()), *more[0]]
            turns[key] = turns.get(key, 0) + len(more[0])
            short -= len(more[0])
        self._shares.took(levels, turns)
        return [d for k in sorted(got, key=lambda k: -levels[k]) for d in got[k]]

    def _source(self, key: int) -> JobSource:
        return self._own if key == _OWN else self.levels[key]

    async def fetch_next(self, timeout: float) -> Sequence[Delivery]:
        """Wait up to `timeout` seconds for a job of any level, or for a level newly in use."""
        if self._heard:
            await self._activate()
        await self._drop_empty()
        self._wake.clear()
        if self._heard:
            return []
        waits = [asyncio.ensure_future(s.fetch_next(timeout)) for s in self._pullers()]
        woken = asyncio.ensure_future(self._wake.wait())
        cancelled = False
        try:
            await asyncio.wait([*waits, woken], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            cancelled = True
        # Settled to the end even when cancelled (the worker stops): a job one of the waits
        # brought meanwhile is handed back, not left leased to nobody.
        settling = asyncio.ensure_future(_settle(woken, waits))
        while not settling.done():
            try:
                await asyncio.shield(settling)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            await hand_back(_brought(waits))
            raise asyncio.CancelledError
        return await _collect(waits)

    def _pullers(self) -> list[JobSource]:
        return [self.levels[lv] for lv in sorted(self.levels, reverse=True)] + [self._own]

    async def _activate(self) -> None:
        """Pull the levels heard of: create their consumers, stop watching them."""
        heard, self._heard = self._heard - set(self.levels), set()
        for level in sorted(heard, reverse=True):
            try:
                source = await self._jobs.open_source(self._queue, self._options, level)
            except BaseException:
                self._heard |= heard - set(self.levels)  # tried again at the next fetch
                raise
            self.levels[level] = source
        if heard and self._watch is not None:
            await self._watch.watch(_ALL_LEVELS - set(self.levels))

    async def _drop_empty(self) -> None:
        """Stop pulling the levels that came back short and have no job stored any more.

        Their watch starts before the count is read, so a job stored meanwhile is heard.
        Checked at most every `_CHECK_EVERY_S`: the count is a request to the broker.
        """
        if not self._short or time.monotonic() - self._checked < _CHECK_EVERY_S:
            return
        self._checked = time.monotonic()
        short, self._short = self._short & set(self.levels), set()
        if not short or self._watch is None:
            return
        await self._watch.watch(_ALL_LEVELS - (set(self.levels) - short))
        stored = await self._jobs.levels(self._queue)
        for level in short:
            if not stored.get(level):
                await self.levels.pop(level).close()
                self._shares.forget(level)
        await self._watch.watch(_ALL_LEVELS - set(self.levels))

    async def close(self) -> None:
        """Close every consumer's puller (handing back what they hold), then stop watching."""
        pullers, self.levels = self._pullers(), {}
        for puller in pullers:
            await puller.close()
        if self._watch is not None:
            await self._watch.close()


async def _gather(
    fetches: Sequence[Awaitable[Sequence[Delivery]]],
    fetched: Iterable[Sequence[Delivery]] = (),
) -> list[Sequence[Delivery]]:
    """Await every fetch; on an error, hand back what the others (and `fetched`) brought."""
    results = await asyncio.gather(*fetches, return_exceptions=True)
    batches = [r for r in results if not isinstance(r, BaseException)]
    if len(batches) < len(results):
        await hand_back([d for batch in [*batches, *fetched] for d in batch])
        raise next(r for r in results if isinstance(r, BaseException))
    return batches


async def _settle(woken: asyncio.Future[Any], waits: Sequence[asyncio.Future[Any]]) -> None:
    """Stop the waits still going; a level's pull left open brings its job to a later fetch."""
    woken.cancel()
    for wait in waits:
        wait.cancel()
    await asyncio.wait([woken, *waits])


def _brought(waits: Sequence[asyncio.Future[Sequence[Delivery]]]) -> list[Delivery]:
    return [d for w in waits if not w.cancelled() and w.exception() is None for d in w.result()]


async def _collect(waits: Sequence[asyncio.Future[Sequence[Delivery]]]) -> list[Delivery]:
    """The jobs the finished waits brought; an error after handing those back."""
    brought = _brought(waits)
    for wait in waits:
        error = None if wait.cancelled() else wait.exception()
        if error is not None:
            await hand_back(brought)
            raise error
    return brought
