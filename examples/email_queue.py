"""An email queue: retries with backoff for a flaky mail provider, a rate limit, dead letters.

Run it from the repository root::

    python examples/email_queue.py                                  # a throwaway nats-server
    NATS_URL=nats://127.0.0.1:4222 python examples/email_queue.py   # your own server

What it shows:

- the provider answers "try again later" now and then: the job is retried with a short
  exponential backoff, and ``ctx.attempt`` says which attempt runs;
- an address the provider rejects raises `InvalidAddress`, listed in ``no_retry_for``: the job
  fails at once, without retries, and lands in the dead letters with its error;
- ``Worker(rate_limit=10)`` starts at most 10 jobs per second in this worker, whatever the
  backlog (``app.queue("email", rate_limit=10)`` sets one limit shared by all the queue's
  workers instead);
- the caller chooses the job id (``with_options(job_id=...)``), so enqueueing the same
  newsletter twice for one address within two minutes stores the job once.

In production the worker runs on its own: ``aioq worker examples.email_queue:app -q email``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections import Counter

from aioq import Aarq, Backoff, Context, JobFailedError, Worker
from aioq.embedded import EmbeddedNats

app = Aarq("nats://127.0.0.1:4222", prefix="email-example")
RATE_LIMIT = 10  # emails per second, the provider's limit
attempts: Counter[str] = Counter()
sent: list[str] = []


class InvalidAddress(Exception):
    """The provider rejected the address: retrying cannot help."""


class ProviderBusy(Exception):
    """The provider asked us to try again later."""


async def provider_send(to: str, subject: str, attempt: int) -> None:
    """A stand-in for an SMTP or HTTP mail API: rejects bad addresses, is busy now and then."""
    await asyncio.sleep(0.01)
    if "@" not in to:
        raise InvalidAddress(f"rejected recipient {to!r}")
    if attempt == 1 and to.startswith("busy"):
        raise ProviderBusy("421 try again later")


@app.task(
    queue="email",
    retries=4,
    timeout=30,
    backoff=Backoff(base=0.1, factor=2, cap=5),
    no_retry_for=(InvalidAddress,),
)
async def send_email(ctx: Context, to: str, subject: str) -> None:
    """Send one email; retried up to 4 times unless the address is invalid."""
    attempts[to] += 1
    await provider_send(to, subject, ctx.attempt)
    sent.append(to)


def newsletter_id(issue: int, to: str) -> str:
    """A job id per newsletter issue and recipient (ids allow letters, digits and ``_=/-``)."""
    return f"newsletter-{issue}-{hashlib.sha256(to.encode()).hexdigest()[:16]}"


async def demo(url: str) -> None:
    app.use_servers(url)
    async with app:
        worker = Worker(app, queues=["email"], concurrency=10, rate_limit=RATE_LIMIT)
        running = asyncio.create_task(worker.run())
        started = time.monotonic()

        recipients = [f"user{i}@example.com" for i in range(12)]
        recipients += ["busy1@example.com", "busy2@example.com", "not-an-address"]
        jobs = await app.enqueue_many(
            send_email.with_options(job_id=newsletter_id(42, to)).prepare(to, "Our newsletter")
            for to in recipients
        )
        again = await send_email.with_options(job_id=newsletter_id(42, recipients[0])).enqueue(
            recipients[0], "Our newsletter"
        )
        print(f"enqueued {len(jobs)} emails; the same one again is a duplicate: {again.duplicate}")

        outcomes = await asyncio.gather(
            *(job.result(timeout=30) for job in jobs), return_exceptions=True
        )
        took = time.monotonic() - started
        failed = [o for o in outcomes if isinstance(o, JobFailedError)]
        retried = sorted(to for to, n in attempts.items() if n > 1)
        print(f"sent {len(sent)} emails in {took:.1f}s (at most {RATE_LIMIT} per second)")
        print(f"retried: {', '.join(retried)}")
        for error in failed:
            print(f"failed without retry: {error}")
        for entry in await app.dead.list("email"):
            letter = entry.letter
            error = letter.error.type if letter.error else "?"
            print(f"dead letter: {letter.id} reason={letter.reason} error={error}")
        worker.stop()
        await running


def main() -> None:
    url = os.environ.get("NATS_URL")
    if url:
        asyncio.run(demo(url))
    else:
        with EmbeddedNats() as server:
            asyncio.run(demo(server.url))


if __name__ == "__main__":
    main()
