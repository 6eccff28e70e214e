"""The page to try the service (``GET /``): static HTML, CSS and JavaScript from this package, no
build step and nothing from elsewhere (no CDN, no fonts), under a strict Content-Security-Policy.

The page and its files load without a key; every API call the page makes sends the key the user
typed (kept in the browser's ``sessionStorage``), so with keys configured it can do nothing a
caller without a key could not. ``TTS_PAGE=false`` leaves all of it out: ``/`` and ``/page/…``
are 404s. Besides its files, the page needs the deployment's prices (``/page/config.json``: what
it estimates a request's cost with) and the stored audio (``function.page.stored``).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from flask import Request, Response

from function.config import Settings
from function.jobs import accepts_jobs
from function.page.stored import job_audio_route, stored_audio_route
from function.storage import ObjectStore
from function.web import Handler, Reply, json_response

STATIC = Path(__file__).parent / "static"
# Everything from this origin, nothing inline (no script or style attributes either), no plugins,
# no framing; blob: for the <audio> element that replays the audio the page fetched.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
# Path → (file in STATIC, content type). The page's own files, open without a key.
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/page/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/page/player.js": ("player.js", "text/javascript; charset=utf-8"),
    "/page/marks.js": ("marks.js", "text/javascript; charset=utf-8"),
    "/page/style.css": ("style.css", "text/css; charset=utf-8"),
    "/favicon.ico": ("icon.svg", "image/svg+xml"),  # what browsers ask for unbidden
    "/page/icon.svg": ("icon.svg", "image/svg+xml"),
}
CONFIG_PATH = "/page/config.json"
OPEN_PATHS = frozenset({*ASSETS, CONFIG_PATH})
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load: a new revision's page is never mixed with an old script.
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _asset(name: str, content_type: str) -> Handler:
    def serve(_: Request) -> Reply:
        return Reply(Response(_read(name), 200, content_type=content_type, headers=SECURITY_HEADERS))

    return serve


def config(settings: Settings) -> dict[str, Any]:
    """What the page needs to know about the deployment: the prices it estimates a request's cost
    with (Cloud Run bills an instance's vCPUs and memory for the request's time, rounded up to
    100 ms, plus a fee per request), the text limits, and whether jobs are accepted."""
    return {
        "prices": {
            "vcpu_second": settings.price_vcpu_second,
            "gib_second": settings.price_gib_second,
            "request": settings.price_per_request,
            "billing_increment_s": 0.1,
        },
        "instance": {"vcpu": settings.instance_vcpu, "memory_gib": settings.instance_memory_mib / 1024},
        "max_chars": settings.max_chars,
        "job_max_chars": settings.job_max_chars,
        "jobs": accepts_jobs(settings),
    }


def routes(settings: Settings, store: ObjectStore) -> dict[tuple[str, str], Handler]:
    """The page's routes, or none when the deployment turns the page off."""
    if not settings.page:
        return {}
    page: dict[tuple[str, str], Handler] = {
        ("GET", path): _asset(name, content_type) for path, (name, content_type) in ASSETS.items()
    }
    body = config(settings)
    page[("GET", CONFIG_PATH)] = lambda _: Reply(json_response(body, headers=SECURITY_HEADERS))
    page[("GET", "/audio/<name>")] = lambda request, name: stored_audio_route(request, store, name)
    page[("GET", "/jobs/<job_id>/audio")] = lambda request, job_id: job_audio_route(request, store, job_id)
    return page
