"""The baseline architecture from the published CosyVoice deployment guide: ONE process, an asyncio
server (FastAPI + uvicorn) handing each request to a thread pool with ``run_in_executor``.

The work per request is the function's own: the request runs through the same WSGI app that
functions-framework serves (routing, validation, cache lookup, synthesis, encoding, storage), so
only the serving architecture differs from the fleet.

The guide's pool queues without bound. ``--max-queue`` bounds it as the fleet's HAProxy does: at
most that many requests per worker wait, a request that finds the queue full is refused at once
(503 + ``Retry-After``) and one that waits longer than ``--queue-timeout`` is refused then, so
admission control and separate processes can be told apart.

    python -m loadtest.baseline --port 8090 --workers 2 [--max-queue 2 --queue-timeout 10]
"""

from __future__ import annotations

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor

import functions_framework
import uvicorn
from fastapi import FastAPI, Request, Response
from werkzeug.test import EnvironBuilder, run_wsgi_app

from function.local import SOURCE
from loadtest.deployments import REFUSED

# Response headers the ASGI server sets itself.
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}


def refused() -> Response:
    return Response(
        content=REFUSED, status_code=503, media_type="application/json", headers={"Retry-After": "1"}
    )


def create_app(workers: int, max_queue: int | None = None, queue_timeout_s: float = 10) -> FastAPI:
    """``max_queue`` None: the guide's unbounded queue; else at most ``max_queue`` × ``workers``
    requests wait for a thread, each at most ``queue_timeout_s``."""
    wsgi = functions_framework.create_app("synthesize", str(SOURCE))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tts")
    threads = asyncio.Semaphore(workers)
    waiting = 0  # requests waiting for a thread (the event loop is single-threaded: no lock)
    app = FastAPI()

    def call(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        environ = EnvironBuilder(
            path=path, method=method, query_string=query, headers=headers, data=body
        ).get_environ()
        chunks, status, response_headers = run_wsgi_app(wsgi, environ, buffered=True)
        content = b"".join(chunks)
        kept = {k: v for k, v in response_headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(content=content, status_code=int(status.split()[0]), headers=kept)

    async def run(request: Request, path: str, body: bytes) -> Response:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            pool, call, request.method, f"/{path}", request.url.query, dict(request.headers), body
        )

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def handle(path: str, request: Request) -> Response:
        nonlocal waiting
        body = await request.body()
        if max_queue is None or request.method == "GET":  # health checks skip the queue
            return await run(request, path, body)
        if threads.locked() and waiting >= max_queue * workers:
            return refused()
        waiting += 1
        try:
            await asyncio.wait_for(threads.acquire(), queue_timeout_s)
        except TimeoutError:
            return refused()
        finally:
            waiting -= 1
        try:
            return await run(request, path, body)
        finally:
            threads.release()

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2, help="thread pool size (concurrent syntheses)")
    parser.add_argument(
        "--max-queue", type=int, default=None, help="requests per worker that may wait (default: no bound)"
    )
    parser.add_argument("--queue-timeout", type=float, default=10, help="seconds a request may wait")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.workers, args.max_queue, args.queue_timeout),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
