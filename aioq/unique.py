"""Unique jobs: one queued or running job per key, held in the unique KV bucket.

A producer claims the key with a KV create before it publishes (race-free: of two producers
only one create succeeds); the other gets the job holding the key. The worker frees the key
when the job ends for good. A key whose release was lost (a crash) is taken over by the next
claim once its holder is seen to be over: its record says it ended, or it is neither on
record nor stored after a grace period, or the key's TTL passed.
"""

from __future__ import annotations

import logging
from typing import Final

import msgspec

from aioq.backend import Broker
from aioq.errors import EnqueueError
from aioq.task import PreparedJob
from aioq.wire import TERMINAL_STATES, JobMessage, JobRecord, UniqueHolder, encode

__all__ = ["claim", "release", "unclaim"]

log = logging.getLogger("aioq.unique")

# A holder with neither record nor stored message is taken as still being published for this
# long after its claim; then as lost (its producer died between the claim and the publish).
UNPUBLISHED_GRACE_S: Final = 60.0
# Compare-and-set rounds before a claim gives up to a key that keeps changing hands.
_CLAIM_TRIES: Final = 5
_holder_decoder: Final = msgspec.json.Decoder(UniqueHolder)
_record_decoder: Final = msgspec.json.Decoder(JobRecord)


async def claim(broker: Broker, job: PreparedJob) -> UniqueHolder | None:
    """Take `job`'s unique key for it; the other job holding the key, or None once taken."""
    spec = job.unique
    assert spec is not None
    control = broker.control
    revision = 0
    for _ in range(_CLAIM_TRIES):
        now = broker.clock.time()
        mine = UniqueHolder(
            id=job.job_id,
            expires_at=now + spec.ttl,
            claimed_at=now,
            queue=job.queue,
            task=job.task,
            key=spec.label,
        )
        if await control.write_unique(spec.key, encode(mine), revision):
            return None
        data, revision = await control.read_unique(spec.key)
        if data is None:
            revision = 0
            continue
        holder = _decode(data)
        if holder is not None and holder.id == job.job_id:
            return None  # our own earlier claim: the publish deduplicates by id
        if holder is not None and await _alive(broker, holder, now):
            return holder
    raise EnqueueError(
        f"unique key {spec.label or spec.key} changed hands {_CLAIM_TRIES} times during one "
        "enqueue; enqueue again"
    )


async def release(broker: Broker, job: JobMessage | None, job_id: str) -> None:
    """Free the unique key `job` holds, if it still holds it; never raises."""
    if job is not None and job.unique_key is not None:
        await _free(broker, job.unique_key, job_id)


async def _free(broker: Broker, key: str, job_id: str) -> None:
    try:
        data, revision = await broker.control.read_unique(key)
        holder = _decode(data) if data is not None else None
        if holder is not None and holder.id == job_id:
            await broker.control.delete_unique(key, revision)
    except Exception as e:  # the next claim finds the job ended and takes the key over
        log.warning("job %s: cannot free its unique key %s: %s", job_id, key, e)


async def unclaim(broker: Broker, job: PreparedJob) -> None:
    """Free the key `job` claimed, after its publish failed; never raises."""
    if job.unique is not None:
        await _free(broker, job.unique.key, job.job_id)


async def _alive(broker: Broker, holder: UniqueHolder, now: float) -> bool:
    """Whether the job holding a key may still be queued, held or running."""
    if holder.expires_at <= now:
        return False
    raw = await broker.records.get(holder.id)
    if raw is not None:
        try:
            return _record_decoder.decode(raw).state not in TERMINAL_STATES
        except msgspec.DecodeError:
            return True
    if now - holder.claimed_at < UNPUBLISHED_GRACE_S:
        return True
    return bool(await broker.jobs.find(holder.id) or await broker.held.find(holder.id))


def _decode(data: bytes) -> UniqueHolder | None:
    try:
        return _holder_decoder.decode(data)
    except msgspec.DecodeError:
        return None  # not ours to judge: a claim replaces it
