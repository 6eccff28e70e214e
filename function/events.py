"""Event triggers: a Pub/Sub message, or a file dropped under the input prefix, becomes audio.

Pub/Sub and Eventarc deliver at least once, so the work is idempotent rather than exactly-once:
the audio and its manifest are write-once objects, and a delivery that finds its event's manifest
already written acknowledges without doing anything. Bad input (a permanent error) is recorded
in a "failed" manifest and acknowledged; storage or model trouble raises, so the platform
redelivers with backoff and finally dead-letters.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

from cloudevents.http import CloudEvent

from function import pipeline
from function.audio import FORMATS, UNSUPPORTED, AudioFormat
from function.config import Settings
from function.engines.base import EngineLoadError
from function.errors import ApiError, bad_field
from function.logs import bind_trace, fields, trace_context, unbind_trace
from function.registry import Engines
from function.schema import EventRequest, parse
from function.storage import GcsStore, ObjectStore, StorageError, StoredObject

log = logging.getLogger("function.event")

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
# Manifests of jobs whose audio has no caller-known name live here, under the job id or event id.
JOBS_PREFIX = "jobs/"
INPUT_SUFFIXES = (".txt", ".json")
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# UTF-8 needs at most 4 bytes a character: a larger input cannot fit the character limit.
_BYTES_PER_CHAR = 4
DEFAULT_FORMAT = FORMATS[EventRequest.model_fields["format"].default]


@dataclass(frozen=True)
class Source:
    """The event that asked for the work, as recorded in the manifest and the log."""

    id: str
    type: str
    subject: str | None
    source: str

    @classmethod
    def of(cls, event: CloudEvent) -> Source:
        return cls(event["id"], event["type"], event.get("subject"), event["source"])


@dataclass(frozen=True)
class Task:
    """What one event asks for: a request (or why it cannot be served) and where results go."""

    manifest: str
    request: EventRequest | None = None
    error: ApiError | None = None
    output: str | None = None  # audio name in the output store; None: the content address
    job_id: str | None = None
    input_uri: str | None = None


class Ignored(Exception):
    """Not for this function (another event type, an object outside the input prefix)."""


def handle(event: CloudEvent, store: ObjectStore, engines: Engines, settings: Settings) -> None:
    """Serve one event. Returning acknowledges it; raising makes the platform redeliver it."""
    source = Source.of(event)
    started = time.perf_counter()
    token = bind_trace(trace_context({"traceparent": event.get("traceparent")}, settings.gcp_project))
    context = {"event_id": source.id, "event_type": source.type, "subject": source.subject}
    try:
        task = _task(event, source, store, settings)
        outcome = _run(task, source, store, engines, settings)
    except Ignored as why:
        _log(logging.INFO, f"event ignored: {why}", started, context, outcome="ignored")
    except Exception as exc:
        # Storage or model trouble, or a bug: redelivery with backoff, then the dead-letter topic.
        expected = isinstance(exc, (StorageError, EngineLoadError))
        _log(
            logging.ERROR,
            f"event will be retried: {exc}",
            started,
            context,
            outcome="retry",
            exc=not expected,
        )
        raise
    else:
        severity = logging.WARNING if outcome["outcome"] == "failed" else logging.INFO
        _log(severity, f"event {outcome['outcome']}", started, context, **outcome)
    finally:
        unbind_trace(token)


def _log(
    severity: int, message: str, started: float, context: dict[str, Any], exc: bool = False, **values: Any
) -> None:
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    log.log(severity, message, exc_info=exc, extra=fields(**context, **values, latency_ms=latency_ms))


# Reading events into tasks


def _task(event: CloudEvent, source: Source, store: ObjectStore, settings: Settings) -> Task:
    data = event.data
    if source.type == PUBSUB_PUBLISHED:
        return _pubsub_task(data, source)
    if source.type == STORAGE_FINALIZED:
        return _storage_task(data, source, store, settings)
    raise Ignored(f"type {source.type} is not handled")


def _pubsub_task(data: Any, source: Source) -> Task:
    fallback = _job_manifest(None, source)
    try:
        message = data["message"]
        encoded = message["data"]
    except (KeyError, TypeError):
        return Task(fallback, error=bad_field("message.data", "is missing: publish the request as data"))
    try:
        body = json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, TypeError) as exc:  # ValueError: bad UTF-8 or bad JSON
        return Task(fallback, error=ApiError(400, "invalid_json", f"is not JSON: {exc}", "message.data"))
    try:
        request = parse(EventRequest, body)
        return _placed(request, request.output, source)
    except ApiError as exc:
        return Task(fallback, error=exc)


def _storage_task(data: Any, source: Source, store: ObjectStore, settings: Settings) -> Task:
    try:
        bucket, name = data["bucket"], data["name"]
    except (KeyError, TypeError):
        return Task(_job_manifest(None, source), error=bad_field("data", "names no bucket and object"))
    if not name.startswith(settings.input_prefix):
        raise Ignored(f"gs://{bucket}/{name} is outside the input prefix {settings.input_prefix!r}")
    if isinstance(store, GcsStore) and store.bucket_name == bucket and name.startswith(store.prefix):
        # Outputs written under the input prefix must never become inputs again.
        raise Ignored(f"gs://{bucket}/{name} is this function's own output")
    relative = PurePosixPath(name[len(settings.input_prefix) :])
    if relative.suffix.lower() not in INPUT_SUFFIXES:
        raise Ignored(f"gs://{bucket}/{name} is not a {' or '.join(INPUT_SUFFIXES)} file")
    input_uri = f"gs://{bucket}/{name}"
    derived = str(relative.with_suffix(""))
    try:
        # Where a caller looks for the outcome of a file it cannot read back: the default format's.
        fallback = Task(f"{output_name(derived, DEFAULT_FORMAT)}.json", input_uri=input_uri)
    except ApiError as exc:
        return Task(_job_manifest(None, source), error=exc, input_uri=input_uri)
    if int(data.get("size") or 0) > settings.max_event_chars * _BYTES_PER_CHAR:
        return _failed(fallback, bad_field("input", f"{data['size']} bytes cannot fit the text limit"))
    inputs = _input_store(bucket)
    if inputs.stat(name) is None:
        raise Ignored(f"{input_uri} no longer exists")
    content = inputs.read(name)
    try:
        if relative.suffix.lower() == ".txt":
            request = EventRequest(text=content.decode("utf-8-sig"))
        else:
            request = parse(EventRequest, json.loads(content.decode("utf-8-sig")))
        task = _placed(request, request.output or derived, source)
    except UnicodeDecodeError as exc:
        return _failed(fallback, ApiError(400, "undecodable_input", f"is not UTF-8 text: {exc}", "input"))
    except ValueError as exc:
        return _failed(fallback, ApiError(400, "invalid_json", f"is not JSON: {exc}", "input"))
    except ApiError as exc:
        return _failed(fallback, exc)
    return Task(task.manifest, request, output=task.output, job_id=task.job_id, input_uri=input_uri)


def _failed(task: Task, error: ApiError) -> Task:
    return Task(task.manifest, error=error, input_uri=task.input_uri)


def _placed(request: EventRequest, output: str | None, source: Source) -> Task:
    """The task with its names: audio at ``output`` (or its content address), manifest beside it
    (or under jobs/ when the audio has no name the caller knows)."""
    if request.job_id is not None and not _JOB_ID.fullmatch(request.job_id):
        raise bad_field("job_id", f"must match {_JOB_ID.pattern}")
    if output is None:
        return Task(_job_manifest(request.job_id, source), request, job_id=request.job_id)
    name = output_name(output, pipeline.resolve_format(request.format, "format"))
    return Task(f"{name}.json", request, output=name, job_id=request.job_id)


def output_name(requested: str, fmt: AudioFormat) -> str:
    """A caller's object name, relative to the output prefix, ending in the format's extension."""
    parts = requested.split("/")
    if (
        any(part in ("", ".", "..") for part in parts)
        or "\\" in requested
        or any(ord(c) < 32 for c in requested)
        or len(requested.encode()) > 512
    ):
        raise bad_field(
            "output",
            f"{requested!r} must be a relative object name: no leading '/', no '.', '..' or empty "
            "segments, no backslashes or control characters, at most 512 bytes",
        )
    suffix = PurePosixPath(requested).suffix.lower().lstrip(".")
    if suffix == fmt.extension:
        return requested
    if suffix in FORMATS or suffix in UNSUPPORTED:
        raise bad_field("output", f"{requested!r} ends in .{suffix} but the format is {fmt.name}")
    return f"{requested}.{fmt.extension}"


def _job_manifest(job_id: str | None, source: Source) -> str:
    return f"{JOBS_PREFIX}{job_id or _safe(source.id)}.json"


def _safe(event_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", event_id)


@lru_cache(maxsize=8)
def _input_store(bucket: str) -> GcsStore:
    return GcsStore(bucket)  # one client per bucket for the life of the instance


# Doing the work


def _run(
    task: Task, source: Source, store: ObjectStore, engines: Engines, settings: Settings
) -> dict[str, Any]:
    existing = store.stat(task.manifest)
    if existing is not None and existing.metadata.get("event_id") == source.id:
        return {"outcome": "duplicate", "manifest": existing.uri, "status": existing.metadata.get("status")}
    record: dict[str, Any] = {
        "job_id": task.job_id,
        "source": asdict(source),
        "input": task.input_uri,
    }
    if task.error is not None:
        return _fail(task, source, store, record, task.error)
    assert task.request is not None
    try:
        job = pipeline.plan(
            task.request,
            engines,
            settings,
            max_chars=settings.max_event_chars,
            timeout_s=settings.event_timeout_s,
        )
        result = pipeline.execute(job, store, settings, want_audio=False, name=task.output)
    except ApiError as exc:
        if not exc.permanent:
            raise
        return _fail(task, source, store, record, exc)
    summary = result.summary()
    timings = {key: summary.pop(key) for key in list(summary) if key.endswith("_ms")}
    record = {"status": "succeeded", **summary, "chars": len(job.text), "timings": timings, **record}
    manifest = _write_manifest(task, source, store, record, job.key)
    logged = {key: summary[key] for key in ("uri", "cached", "cold_start", "duration_s", "voice")}
    return {"outcome": "done", "manifest": manifest.uri, "chars": len(job.text), **logged, **timings}


def _fail(
    task: Task, source: Source, store: ObjectStore, record: dict[str, Any], error: ApiError
) -> dict[str, Any]:
    record = {
        "status": "failed",
        "error": {"code": error.code, "message": error.message, "field": error.field},
        **record,
    }
    manifest = _write_manifest(task, source, store, record, None)
    return {"outcome": "failed", "manifest": manifest.uri, "error": error.code, "error_field": error.field}


def _write_manifest(
    task: Task, source: Source, store: ObjectStore, record: dict[str, Any], job_key: str | None
) -> StoredObject:
    """Write-once, so of two deliveries racing on one event the first manifest stands. When the
    name beside the audio already holds another job's manifest, this job's goes under jobs/."""
    record["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    data = json.dumps(record, ensure_ascii=False, indent=2).encode()
    metadata = {"event_id": source.id, "status": record["status"], "job_key": job_key or ""}
    for name in dict.fromkeys((task.manifest, _job_manifest(task.job_id, source))):
        stored, created = store.create(name, data, "application/json", metadata)
        if created or stored.metadata.get("event_id") == source.id:
            return stored
        if job_key and stored.metadata.get("job_key") == job_key:
            return stored  # another event made the same audio here: its manifest describes ours
    log.warning("manifest names taken by other jobs", extra=fields(event_id=source.id, manifest=stored.uri))
    return stored
