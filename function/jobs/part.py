"""Running one part of a job, as the event target receives it: synthesize it (an ordinary
content-addressed request, found in storage when another job or request made it), record it in
its part manifest, and assemble the job when it is the last to finish.

A part is checked against the job's record first (``_not_planned``): what the record did not plan
is acknowledged, logged and ignored. Redelivery is harmless: a part whose manifest exists is not
synthesized again, but still checks whether the job is complete (the delivery that finished it may
have died before assembling). A permanent error fails the part and, with it, the job; later parts
of a failed job do nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from function import pipeline
from function.audio import FORMATS
from function.config import Settings
from function.errors import ApiError
from function.jobs.assemble import assemble, fail, notify
from function.jobs.layout import JOB_ID, JSON, Job, finished_at, part_name, parts_prefix, request_digest
from function.jobs.publish import publisher
from function.jobs.submit import PART_ATTRIBUTE, PART_FORMAT
from function.namespaces import content_address
from function.registry import Engines
from function.schema import SynthesizeRequest
from function.storage import ObjectStore
from function.text import normalize_text


class PartMessage(BaseModel):
    """A part's Pub/Sub message data (``function.jobs.submit``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str
    part: int
    parts: int
    request: SynthesizeRequest

    @classmethod
    def of(cls, data: Any) -> PartMessage | None:
        """The part a Pub/Sub push body carries, or None when it is not a part (no part attribute)."""
        message = data.get("message") if isinstance(data, dict) else None
        attributes = message.get("attributes") if isinstance(message, dict) else None
        if not isinstance(attributes, dict) or PART_ATTRIBUTE not in attributes:
            return None
        try:
            return cls.model_validate(json.loads(base64.b64decode(message["data"], validate=True)))
        except (KeyError, TypeError, ValueError, binascii.Error, ValidationError):
            return None  # not a part this function published: read as an ordinary message


@dataclass(frozen=True)
class PartOutcome:
    """What a part delivery did: ``outcome`` is done, duplicate (its manifest existed), failed or
    ignored (not a part the job planned: ``reason`` says why); ``job_status`` is set when this
    delivery finished the job."""

    outcome: str
    part: PartMessage
    manifest: str | None = None
    result: pipeline.Result | None = None
    error: ApiError | None = None
    job_status: str | None = None
    reason: str | None = None

    def log_fields(self) -> dict[str, Any]:
        part = self.part
        fields: dict[str, Any] = {"job_id": part.job_id, "part": part.part, "parts": part.parts}
        if self.manifest is not None:
            fields["manifest"] = self.manifest
        if self.result is not None:
            fields |= self.result.log_fields()
        if self.error is not None:
            fields |= self.error.log_fields()
        if self.job_status is not None:
            fields["job_status"] = self.job_status
        return fields


def run_part(part: PartMessage, store: ObjectStore, engines: Engines, settings: Settings) -> PartOutcome:
    """Serve one part delivery; raises (a retry) on storage or model trouble."""
    # The delivery that finishes the job assembles it: inside the same budget as a synthesis.
    deadline = time.monotonic() + settings.event_timeout_s * pipeline.TIMEOUT_BUDGET
    job = _job_of(part, store)
    if isinstance(job, PartOutcome):
        return job
    if job.final(store) is not None:
        return PartOutcome("duplicate", part)
    existing = store.stat(part_name(job.id, part.part))
    if existing is not None:
        return PartOutcome(
            "duplicate", part, existing.uri, job_status=_complete(job, store, settings, deadline)
        )
    try:
        # The job sized its parts already: a part is never refused for its length.
        plan = pipeline.plan(
            part.request,
            engines,
            settings,
            max_chars=settings.job_max_chars,
            timeout_s=settings.event_timeout_s,
        )
        plan = pipeline.scoped(plan, job.scope)  # the record's scope, whatever this instance's settings
        if plan.object_name != job.part_objects[part.part]:
            raise _changed(plan, job)
        started = time.perf_counter()
        result = pipeline.execute(plan, store, settings, want_audio=False)
        service_s = time.perf_counter() - started
    except ApiError as exc:
        if not exc.permanent:
            raise
        return fail_part(part, store, settings, exc)
    record = {
        "status": "succeeded",
        "part": part.part,
        "object": result.stored.name,
        "chars": len(plan.text),
        "duration_s": result.duration_s,
        "cached": result.cached,
        "cold": "load_ms" in result.timings,
        "service_s": round(service_s, 3),
        "timings": pipeline.rounded(result.timings),
        "finished_at": finished_at(),
    }
    manifest = _write_part(job, part, store, record)
    return PartOutcome("done", part, manifest, result, job_status=_complete(job, store, settings, deadline))


def _changed(plan: pipeline.Plan, job: Job) -> ApiError:
    """Why the part's audio would not be the audio the job planned: this instance's engine is not
    the job's, or (the same engine) a lexicon the part uses was edited since the job was submitted."""
    engine = plan.engine
    if (engine.name, engine.model_version) != (job.engine, job.model_version):
        return ApiError(
            409,
            "engine_changed",
            f"this instance's {engine.name} ({engine.model_version}) is not the job's {job.engine} "
            f"({job.model_version})",
        )
    return ApiError(
        409,
        "lexicon_changed",
        "a lexicon this part uses changed after the job was submitted; submit the document again",
        field="lexicons",
    )


def _job_of(part: PartMessage, store: ObjectStore) -> Job | PartOutcome:
    """The part's job, or the outcome "ignored" when the job's record did not plan this part. The
    record is written before any part is published (storage is strongly consistent): a part of a
    job without one was not published by this function."""
    job = Job.read(store, part.job_id) if JOB_ID.fullmatch(part.job_id) else None
    if job is None:
        return PartOutcome("ignored", part, reason=f"no job {part.job_id[:64]!r} is recorded")
    if (why := _not_planned(job, part)) is not None:
        return PartOutcome("ignored", part, reason=why)
    return job


def _not_planned(job: Job, part: PartMessage) -> str | None:
    """Why ``part`` is not a part the job's record planned (its index, or a different text, voice,
    speed or format: anyone who may publish to the topics can set the part attribute), or None.
    Checked before anything can fail the job, so a forged part can neither fail nor finish it."""
    if part.parts != job.parts or not 0 <= part.part < job.parts:
        return f"part {part.part} of {part.parts}: the job has {job.parts} parts"
    if job.part_digests:
        if request_digest(part.request) != job.part_digests[part.part]:
            return f"part {part.part} is not the request the job planned"
        return None
    request = part.request
    # The engine hears the text normalised, or as sent when it takes raw text (pipeline.plan): the
    # planned address binds the exact text either way, so either spelling may match it.
    addresses = {
        content_address(
            pipeline.content_key(
                (job.engine, job.model_version, job.voice, text, job.speed, PART_FORMAT), scope=job.scope
            )
        )
        for text in (request.text, normalize_text(request.text))
    }
    same = (request.voice, request.speed, request.format) == (job.voice, job.speed, PART_FORMAT)
    planned = job.part_objects[part.part].removesuffix(f".{FORMATS[PART_FORMAT].extension}")
    if not same or planned not in addresses:
        return f"part {part.part} is not the text, voice, speed and format the job planned"
    return None


def fail_part(part: PartMessage, store: ObjectStore, settings: Settings, error: ApiError) -> PartOutcome:
    """Record the part as failed and fail its job, naming the part (once: manifests are write-once)."""
    job = _job_of(part, store)
    if isinstance(job, PartOutcome):  # given up on a part its job never planned: it fails nothing
        return job
    record = {"status": "failed", "part": part.part, "error": error.record(), "finished_at": finished_at()}
    manifest = _write_part(job, part, store, record)
    final = fail(job, store, publisher(settings), error, part.part)
    return PartOutcome("failed", part, manifest, error=error, job_status=final.metadata.get("status"))


def _write_part(job: Job, part: PartMessage, store: ObjectStore, record: dict[str, Any]) -> str:
    data = json.dumps(record, ensure_ascii=False, indent=2).encode()
    stored, _ = store.create(
        part_name(job.id, part.part), data, JSON, {"job_id": job.id, "status": record["status"]}
    )
    return stored.uri


def _complete(job: Job, store: ObjectStore, settings: Settings, deadline: float) -> str | None:
    """Assemble the job when every part is recorded (every finisher writes its manifest before it
    counts, so of two finishing together at least one counts all); the job's status if it did."""
    if len(store.names(parts_prefix(job.id))) < job.parts:
        return None
    final = job.final(store)
    if final is None:
        final = assemble(job, store, publisher(settings), deadline)
    else:  # a redelivery: the finisher may have died before notifying
        notify(job, store, publisher(settings), final)
    return final.metadata.get("status")
