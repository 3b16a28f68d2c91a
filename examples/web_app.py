"""Enqueue jobs from a web app (Starlette; FastAPI works the same way).

The web process only enqueues: ``POST /signup`` stores a job and answers 202 with its id at
once, and ``GET /jobs/{id}`` reports how the job is doing. Workers run elsewhere::

    uvicorn examples.web_app:web                      # pip install starlette uvicorn
    aioq worker examples.web_app:app -q signup        # any number of these

The app connects in the web app's lifespan, so the first request does not pay for it, and
closes (flushing what is in flight) when the server stops.

``python examples/web_app.py`` runs a self-contained demo: a throwaway nats-server (or
``$NATS_URL``), a worker in the same process, and requests through httpx2's in-process ASGI
transport (``pip install starlette httpx2``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aioq import Aarq, Context, JobNotFoundError, Worker
from aioq.embedded import EmbeddedNats

app = Aarq("nats://127.0.0.1:4222", prefix="web-example")


@app.task(queue="signup", retries=3, timeout=30)
async def send_welcome(ctx: Context, email: str, name: str) -> str:
    """The slow part of a signup, moved out of the request."""
    await asyncio.sleep(0.05)  # an email provider's API call
    return f"welcome mail sent to {name} <{email}>"


async def signup(request: Request) -> JSONResponse:
    body = await request.json()
    email, name = body.get("email"), body.get("name", "")
    if not isinstance(email, str) or "@" not in email:
        return JSONResponse({"error": "email is required"}, status_code=422)
    job = await send_welcome.enqueue(email, name)
    return JSONResponse({"job_id": job.id}, status_code=202)


async def job_status(request: Request) -> JSONResponse:
    try:
        job = await app.job(request.path_params["job_id"], queue="signup")
        record = await job.status()
    except JobNotFoundError:
        return JSONResponse({"error": "no such job"}, status_code=404)
    return JSONResponse(
        {"state": record.state, "attempts": record.attempts, "result": record.result}
    )


@contextlib.asynccontextmanager
async def lifespan(web: Starlette) -> AsyncIterator[None]:
    async with app:  # connect at startup; flush and close at shutdown
        yield


web = Starlette(
    routes=[
        Route("/signup", signup, methods=["POST"]),
        Route("/jobs/{job_id}", job_status),
    ],
    lifespan=lifespan,
)


async def demo(url: str) -> None:
    import httpx2  # only the demo needs it

    app.use_servers(url)
    async with app:  # what the lifespan does under uvicorn
        worker = Worker(app, queues=["signup"])
        running = asyncio.create_task(worker.run())
        transport = httpx2.ASGITransport(app=web)
        async with httpx2.AsyncClient(transport=transport, base_url="http://demo") as client:
            response = await client.post(
                "/signup", json={"email": "ada@example.com", "name": "Ada"}
            )
            job_id = response.json()["job_id"]
            print(f"POST /signup -> {response.status_code} job {job_id}")
            for _ in range(200):
                status = (await client.get(f"/jobs/{job_id}")).json()
                if status["state"] == "succeeded":
                    break
                await asyncio.sleep(0.05)
            print(f"GET /jobs/{job_id} -> {status}")
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
