"""The baseline architecture from the published CosyVoice deployment guide: ONE process, an asyncio
server (FastAPI + uvicorn) handing each request to a thread pool with ``run_in_executor``.

The work per request is the function's own: the request runs through the same WSGI app that
functions-framework serves (routing, validation, cache lookup, synthesis, encoding, storage), so
only the serving architecture differs from the fleet.

    python -m loadtest.baseline --port 8090 --workers 2
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

# Response headers the ASGI server sets itself.
HOP_BY_HOP = {"content-length", "transfer-encoding", "connection"}


def create_app(workers: int) -> FastAPI:
    wsgi = functions_framework.create_app("synthesize", str(SOURCE))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tts")
    app = FastAPI()

    def call(method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> Response:
        environ = EnvironBuilder(
            path=path, method=method, query_string=query, headers=headers, data=body
        ).get_environ()
        chunks, status, response_headers = run_wsgi_app(wsgi, environ, buffered=True)
        content = b"".join(chunks)
        kept = {k: v for k, v in response_headers.items() if k.lower() not in HOP_BY_HOP}
        return Response(content=content, status_code=int(status.split()[0]), headers=kept)

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def handle(path: str, request: Request) -> Response:
        body = await request.body()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            pool, call, request.method, f"/{path}", request.url.query, dict(request.headers), body
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2, help="thread pool size (concurrent syntheses)")
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.workers), host=args.host, port=args.port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
