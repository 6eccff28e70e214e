"""Doing an event's work: task → audio (the pipeline) + manifest, each written once."""

from __future__ import annotations

import json
import logging
from typing import Any

from function import jobs, pipeline
from function.config import Settings
from function.errors import ApiError
from function.events.outcome import Outcome
from function.events.task import Source, Task, job_manifest
from function.frame import Failure
from function.jobs.layout import finished_at
from function.jobs.request import inline_document
from function.logs import fields
from function.registry import Engines
from function.storage import ObjectStore, StoredObject

log = logging.getLogger("function.event")
# Refusals of a text that one event cannot synthesize: with jobs configured, it becomes a job.
TOO_LONG_FOR_ONE_EVENT = {"text_too_long", "text_too_long_for_timeout", "ssml_too_long"}


def run(task: Task, store: ObjectStore, engines: Engines, settings: Settings) -> Outcome:
    """Serve the task, unless this event's manifest is already written (a redelivery). Bad input is
    recorded in a "failed" manifest; anything else that goes wrong raises (a retry)."""
    existing = store.stat(task.manifest)
    if existing is not None and existing.metadata.get("event_id") == task.source.id:
        return Outcome.duplicate(task.source, existing)
    if task.error is not None:
        return _record_failure(task, store, task.error)
    try:
        result = _synthesize(task, store, engines, settings)
    except ApiError as exc:
        if not exc.permanent:
            raise
        publisher = jobs.publisher(settings)
        if exc.code in TOO_LONG_FOR_ONE_EVENT and publisher is not None and jobs.accepts_jobs(settings):
            return _as_job(task, store, engines, settings, publisher)
        return _record_failure(task, store, exc)
    record = {"status": "succeeded", **result.manifest(), **task.record()}
    manifest = write_manifest(task, store, record, result.plan.audio_key)
    return Outcome.done(task.source, manifest, result)


def _as_job(
    task: Task, store: ObjectStore, engines: Engines, settings: Settings, publisher: jobs.Publisher
) -> Outcome:
    """A text too long for one event becomes a job: its audio and manifest land where this event's
    would have (the part that finishes last writes them)."""
    assert task.request is not None
    try:
        submitted = jobs.submit(
            task.request,
            inline_document(task.request),
            store,
            engines,
            settings,
            publisher,
            output=task.output,
            manifest=task.manifest,
            origin=task.record(),
        )
    except ApiError as exc:
        if not exc.permanent:
            raise
        return _record_failure(task, store, exc)
    return Outcome.submitted(task.source, submitted)


def _synthesize(task: Task, store: ObjectStore, engines: Engines, settings: Settings) -> pipeline.Result:
    assert task.request is not None  # a task without an error has a request
    plan = pipeline.plan(
        task.request,
        engines,
        settings,
        max_chars=settings.max_event_chars,
        timeout_s=settings.event_timeout_s,
        fmt=task.format,
    )
    return pipeline.execute(plan, store, settings, want_audio=False, name=task.output)


def _record_failure(task: Task, store: ObjectStore, error: ApiError) -> Outcome:
    """A "failed" manifest for input that can never succeed; the event is then acknowledged."""
    return Outcome.failed(task.source, failed_manifest(task, store, error), error)


def give_up(task: Task, store: ObjectStore, failure: Failure, why: str) -> Outcome:
    """A "failed" manifest for an event that kept failing (storage, model, a bug) past the
    poison-message limits; the event is then acknowledged. Raises when storage refuses it too."""
    manifest = failed_manifest(task, store, given_up(failure, why))
    return Outcome.gave_up(task.source, manifest.uri, failure, why)


def give_up_part(
    part: jobs.PartMessage, source: Source, store: ObjectStore, settings: Settings, failure: Failure, why: str
) -> Outcome:
    """The same for a job's part: the part and its job are recorded as failed."""
    outcome = jobs.fail_part(part, store, settings, given_up(failure, why))
    return Outcome.gave_up(source, outcome.manifest, failure, why, outcome.log_fields())


def given_up(failure: Failure, why: str) -> ApiError:
    error = failure.error
    return ApiError(error.status, error.code, f"{error.message}; gave up: {why}", error.field)


def failed_manifest(task: Task, store: ObjectStore, error: ApiError) -> StoredObject:
    return write_manifest(task, store, {"status": "failed", "error": error.record(), **task.record()}, None)


def write_manifest(
    task: Task, store: ObjectStore, record: dict[str, Any], audio_key: str | None
) -> StoredObject:
    """Write-once, so of two deliveries racing on one event the first manifest stands. When the
    name beside the audio already holds another job's manifest, this job's goes under jobs/: by
    the caller's job id, or by the event id when that job id is another event's too (a reused id)."""
    source = task.source
    record["finished_at"] = finished_at()
    data = json.dumps(record, ensure_ascii=False, indent=2).encode()
    metadata = {
        "event_id": source.id,
        "status": record["status"],
        pipeline.AUDIO_KEY_METADATA: audio_key or "",
    }
    names = (task.manifest, job_manifest(task.job_id, source), job_manifest(None, source))
    for name in dict.fromkeys(names):
        stored, created = store.create(name, data, "application/json", metadata)
        if created or stored.metadata.get("event_id") == source.id:
            return stored
        if audio_key and stored.metadata.get(pipeline.AUDIO_KEY_METADATA) == audio_key:
            return stored  # another event made the same audio here: its manifest describes ours
    log.warning("manifest names taken by other jobs", extra=fields(event_id=source.id, manifest=stored.uri))
    return stored
