"""Stored audio for a browser: the page's download link and replay. A stream tells where its audio
is stored (``X-Audio-Uri``: a ``gs://`` or ``file://`` URI no browser can open, and a signed URL
only exists for GCS), so the page fetches it here, with the key it sends to every route.

Only content-addressed objects (what ``POST /synthesize`` stores) and a finished job's audio (for
its owner: ``Job.find``) are served: never job records, manifests, caller-named outputs or a local
store's metadata. A content address names one request's audio in one key's cache
(``function.pipeline.cache_scope``): knowing it is having made, or been given, that request.
"""

from __future__ import annotations

import json
import re

from flask import Request, Response

from function import auth
from function.audio import FORMATS
from function.errors import ApiError
from function.jobs.layout import Job
from function.namespaces import CONTENT_ADDRESS_CHARS
from function.storage import ObjectStore
from function.web import Reply

# <40 hex>[-<variant>].<format>: function.pipeline.Plan.object_name; and its speech marks beside
# it (issue 26: <audio object>.marks.json), for the page's highlighting.
CONTENT_ADDRESSED = re.compile(
    rf"[0-9a-f]{{{CONTENT_ADDRESS_CHARS}}}(?:-[a-z0-9]+)?\.(?:{'|'.join(map(re.escape, FORMATS))})"
    r"(?:\.marks\.json)?"
)


def stored_audio_route(_: Request, store: ObjectStore, name: str) -> Reply:
    """``GET /audio/<object>``: the stored audio a synthesis response named (``object``), or its marks."""
    if not CONTENT_ADDRESSED.fullmatch(name):
        raise ApiError(
            400, "invalid_field", "must be the object a synthesis named: <40 hex digits>.<format>", "name"
        )
    return _audio(store, name)


def job_audio_route(request: Request, store: ObjectStore, job_id: str) -> Reply:
    """``GET /jobs/<id>/audio``: a finished job's audio, for the key that submitted it."""
    job = Job.find(store, job_id, auth.caller(request))
    final = job.final(store)
    status = json.loads(store.read(final.name)).get("status") if final is not None else "running"
    if status != "succeeded":
        raise ApiError(409, "job_not_succeeded", f"job {job.id} is {status}: it has no audio", "job_id")
    return _audio(store, job.output)


def _audio(store: ObjectStore, name: str) -> Reply:
    stored = store.stat(name)
    if stored is None:
        raise ApiError(404, "audio_not_found", f"no stored audio {name!r}", "name")
    data = store.read(name)
    headers = {"Cache-Control": "private, max-age=3600"}  # content-addressed: never changes
    return Reply(Response(data, 200, content_type=stored.content_type, headers=headers), {"object": name})
