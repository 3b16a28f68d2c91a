"""Enqueue jobs from sync code: a WSGI app (what Django and Flask views are) and threads.

Sync code runs no event loop, so it calls ``task.enqueue_sync(...)``: it blocks until the
job is stored and returns the job, whose ``id`` the view hands back. It is safe from any
thread; the app publishes from one event loop of its own, in a background thread. Serve the
WSGI app with any server, threaded or not, and run workers elsewhere::

    gunicorn --threads 8 examples.sync_producer:wsgi       # or uWSGI, mod_wsgi, waitress...
    aioq worker examples.sync_producer:app -q signup

``python examples/sync_producer.py`` runs a self-contained demo: a throwaway nats-server (or
``$NATS_URL``), the WSGI app on a threaded wsgiref server, a few requests at once, then a
worker in ``asyncio.run`` that runs the jobs.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from aioq import Aarq, Context, Worker
from aioq.embedded import EmbeddedNats

app = Aarq("nats://127.0.0.1:4222", prefix="sync-example")


@app.task(queue="signup", retries=3, timeout=30)
async def send_welcome(ctx: Context, email: str, name: str) -> str:
    """The slow part of a signup, moved out of the request."""
    await asyncio.sleep(0.01)  # an email provider's API call
    return f"welcome mail sent to {name} <{email}>"


StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def wsgi(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``POST /signup`` with a JSON body ``{"email": ..., "name": ...}``: 202 and the job id."""

    def answer(status: str, body: dict[str, str]) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    if (environ["REQUEST_METHOD"], environ["PATH_INFO"]) != ("POST", "/signup"):
        return answer("404 Not Found", {"error": "POST /signup"})
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(size) or b"{}")
    email, name = body.get("email"), body.get("name", "")
    if not isinstance(email, str) or "@" not in email:
        return answer("422 Unprocessable Entity", {"error": "email is required"})
    job = send_welcome.enqueue_sync(email, name)  # what a Django or Flask view does
    return answer("202 Accepted", {"job_id": job.id})


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """wsgiref's server, one thread per request (as a threaded production server)."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def post(base: str, path: str, payload: dict[str, str]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(
        base + path, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


async def run_jobs(job_ids: list[str]) -> list[str]:
    """A worker in this script for the demo: runs the queue dry, then the results."""
    worker = Worker(app, queues=["signup"], burst=True, handle_signals=False)
    await worker.run()
    results = [await (await app.job(job_id)).result(timeout=10) for job_id in job_ids]
    await app.close()
    return results


def demo(url: str) -> None:
    app.use_servers(url)
    server = make_server("127.0.0.1", 0, wsgi, ThreadingWSGIServer, QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        status, body = post(base, "/signup", {"name": "nobody"})
        print(f"POST /signup without email -> {status} {body['error']}")
        people = [
            {"email": "ada@example.com", "name": "Ada"},
            {"email": "alan@example.com", "name": "Alan"},
            {"email": "grace@example.com", "name": "Grace"},
        ]
        with ThreadPoolExecutor(len(people)) as pool:  # requests at once, on server threads
            answers = list(pool.map(lambda person: post(base, "/signup", person), people))
        for status, body in answers:
            print(f"POST /signup -> {status} job {body['job_id']}")
    finally:
        server.shutdown()
        server.server_close()
    # Another event loop than enqueue_sync's: the app connects in it too.
    for result in asyncio.run(run_jobs([body["job_id"] for _, body in answers])):
        print(result)
    app.close_sync()  # also done at interpreter exit
    print("done")


def main() -> None:
    url = os.environ.get("NATS_URL")
    if url:
        demo(url)
    else:
        with EmbeddedNats() as server:
            demo(server.url)


if __name__ == "__main__":
    main()
