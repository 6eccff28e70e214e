"""Long documents as jobs, fanned out over event instances.

``POST /jobs`` (or a Pub/Sub message or dropped file too long for one event) → ``submit``: split
at paragraph and sentence boundaries into parts that each fit one event's time budget, record the
job in storage, publish one message per part → the event target runs each part (``run_part``) on
as many instances as the platform allows → the part that finishes last assembles the audio and
the manifest, write-once, and publishes the results notification. ``status`` reads progress from
storage only: instances keep nothing. Layout and record: ``function.jobs.layout``.
"""

from __future__ import annotations

import json
from typing import Any

from function.config import Settings
from function.errors import ApiError
from function.jobs.layout import Job, parts_prefix
from function.jobs.part import PartMessage, PartOutcome, fail_part, run_part
from function.jobs.publish import Publisher, accepts_jobs, publisher
from function.jobs.request import JobRequest, document_text
from function.jobs.submit import Submitted, submit
from function.registry import Engines
from function.storage import ObjectStore

__all__ = [
    "JobRequest",
    "PartMessage",
    "PartOutcome",
    "Publisher",
    "Submitted",
    "accept",
    "accepts_jobs",
    "fail_part",
    "publisher",
    "run_part",
    "status",
    "submit",
]


def accept(
    request: JobRequest, store: ObjectStore, engines: Engines, settings: Settings, owner: str | None = None
) -> Submitted:
    """``POST /jobs``: the job for the request's document, recorded and published; ``owner``: the
    caller's key id where keys are configured (the job is then its alone: ``Job.find``)."""
    jobs_publisher = publisher(settings)
    if jobs_publisher is None or not accepts_jobs(settings):
        raise ApiError(
            503,
            "jobs_unavailable",
            "jobs are not configured here (TTS_JOBS_PARTS_TOPIC or TTS_JOBS_PUSH_URLS)",
        )
    text = document_text(request, settings)
    origin = {"input": request.input}
    return submit(request, text, store, engines, settings, jobs_publisher, origin=origin, owner=owner)


def status(store: ObjectStore, job_id: str, owner: str | None = None) -> dict[str, Any]:
    """``GET /jobs/<id>``: running with parts done of all, or the final manifest."""
    job = Job.find(store, job_id, owner)
    done = len(store.names(parts_prefix(job.id)))
    final = job.final(store)
    if final is not None:
        return json.loads(store.read(final.name)) | {"parts_done": done}
    return {"status": "running", **job.summary(store), "parts_done": done}
