"""Submitting a job: route the document once, split it into parts that each fit one event, plan
every part (so a bad voice, speed or format is a 400 now, not a failed part later), record the
job write-once, then publish one message per part."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from function import pipeline
from function.config import Settings
from function.document import Document
from function.engines.base import Engine
from function.errors import bad_field
from function.jobs.claim import publish_once
from function.jobs.layout import JSON, Job, job_dir, manifest_name, record_name, request_digest
from function.jobs.markup_parts import markup_parts
from function.jobs.publish import Message, Publisher
from function.jobs.split import split_parts
from function.marks import Locator
from function.registry import Engines
from function.routing import route
from function.schema import SynthesizeRequest
from function.storage import ObjectStore
from function.text import normalize_text

# Parts are synthesized as raw PCM, whatever the job's format: PCM parts concatenate (GCS compose)
# into PCM and WAV without passing through an instance, and decode at no cost for other formats.
PART_FORMAT = "pcm"
# The message attribute that marks a part (the event target tells parts from requests by it).
PART_ATTRIBUTE = "tts_job_part"
# Encoding a job's audio (in the delivery that finishes it) per second of audio, measured on a
# 2 vCPU AMD EPYC (docs/jobs.md, "Assembly, per format"); pcm and wav are composed, not encoded.
ENCODE_S_PER_AUDIO_S = {"flac": 0.001, "mp3": 0.02, "ogg": 0.005, "opus": 0.035}
# The least audio a character gives at speed 1 (English prose measured 0.062 s, Mandarin 0.22 s):
# a job refused by it could not be encoded in time whatever its text says.
MIN_AUDIO_S_PER_CHAR = 0.03


@dataclass(frozen=True)
class Submitted:
    job: Job
    published: bool  # False: a re-sent job whose parts were published (or claimed) by another call

    def accepted(self, store: ObjectStore) -> dict[str, Any]:
        """The 202's body: the job, where its results will be, and where to ask for progress."""
        return {"status": "accepted", **self.job.summary(store), "status_url": f"/jobs/{self.job.id}"}

    def log_fields(self) -> dict[str, Any]:
        job = self.job
        return {"job_id": job.id, "parts": job.parts, "chars": job.chars, "engine": job.engine}


def part_chars(engine: Engine, settings: Settings) -> int:
    """The longest part: one event's synthesis budget (``TIMEOUT_BUDGET`` of the event timeout) times
    ``job_part_budget`` (margin for a vCPU slower than the estimate), at the engine's seconds per
    character, and at most ``job_part_chars``."""
    seconds_per_char = settings.seconds_per_char or engine.seconds_per_char
    budget_s = settings.event_timeout_s * pipeline.TIMEOUT_BUDGET * settings.job_part_budget
    return max(1, min(settings.job_part_chars, int(budget_s / seconds_per_char)))


@dataclass(frozen=True)
class Cut:
    """The job's document as parts: each part's own request fields (its text or its markup), what
    to add to its character offsets for the job's text, and (an SSML job's) the silence before it
    and its markup parsed (planned from that parse, not a second one)."""

    fields: list[dict[str, str]]
    starts: tuple[int, ...]
    pauses: tuple[int, ...] = ()
    parsed: tuple[Document, ...] = ()


def submit(
    request: SynthesizeRequest,
    text: str,
    store: ObjectStore,
    engines: Engines,
    settings: Settings,
    publisher: Publisher,
    *,
    output: str | None = None,
    manifest: str | None = None,
    origin: dict[str, Any] | None = None,
    owner: str | None = None,
) -> Submitted:
    """Record and publish the job for ``text`` (plain text, or the SSML the request says it is; its
    results at ``output`` and ``manifest``, or under jobs/<id>/). The job id is a content address:
    the same document with the same settings and destination is the same job, so re-sending it
    publishes nothing new. With an ``owner`` (the caller's key id) the id is derived from it too:
    another key sending the same document gets a job of its own, and learns nothing from its id."""
    markup = request.markup_field()
    document = None
    if markup is not None:
        from function import ssml  # the XML machinery only for SSML jobs

        document = ssml.parse(
            text, max_bytes=settings.job_ssml_max_bytes, max_chars=settings.job_max_chars, field_name=markup
        )
        spoken = normalize_text(document.text)
    else:
        text = spoken = normalize_text(text)
    named = markup or "text"
    if not spoken:
        raise bad_field(named, "is empty" if markup is None else "speaks nothing", code="empty_text")
    if len(spoken) > settings.job_max_chars:
        has = "has" if markup is None else "speaks"
        limit = f"{has} {len(spoken)} characters; the limit is {settings.job_max_chars}"
        raise bad_field(named, limit, code="text_too_long")
    fmt = pipeline.resolve_format(request.format, "format")
    language = request.language or (document.language if document is not None else None)
    chosen = route(engines, spoken, request.voice, language, settings.default_voice)
    size = part_chars(chosen.engine, settings)
    scope = pipeline.cache_scope(owner, settings)
    # Subtitles alone need the parts' sentence marks.
    part_marks = request.marks or (["sentence"] if request.subtitles else None)
    if document is None:
        parts = split_parts(text, size)
        cut = Cut([{"text": part} for part in parts], part_starts(text, parts) if part_marks else ())
    else:
        cut = _markup_cut(text, document, size, chosen.engine.sample_rate, settings)
    part_requests = [
        SynthesizeRequest.model_validate(
            fields
            | {"voice": chosen.voice.id, "speed": request.speed, "format": PART_FORMAT}
            | {"language": request.language, "marks": part_marks, "lexicons": request.lexicons}
        )
        for fields in cut.fields
    ]
    parsed = cut.parsed or (None,) * len(part_requests)
    plans = [
        pipeline.scoped(
            pipeline.plan(
                part, engines, settings, max_chars=size, timeout_s=settings.event_timeout_s, parsed=read
            ),
            scope,
        )
        for part, read in zip(part_requests, parsed, strict=True)
    ]
    marked = (*(request.marks or ()), request.subtitles) if part_marks else ()
    # An SSML job's silences and (with marks) offsets depend on its markup, not only on its parts.
    laid_out = (cut.pauses, cut.starts if part_marks else ()) if document is not None else ()
    job_id = _job_id(
        [p.audio_key for p in plans],
        fmt.name,
        output,
        manifest,
        settings.sentence_pause_ms,
        owner,
        marked,
        laid_out,
    )
    if output is None and manifest is None:  # its results live under its own id: it can run again
        job_id = _next_attempt(store, job_id)
    first = plans[0]
    _check_encoding(fmt.name, sum(len(p.text) for p in plans), first.speed, settings)
    job = Job(
        id=job_id,
        chars=len(spoken),
        format=fmt.name,
        engine=first.engine.name,
        model_version=first.engine.model_version,
        voice=first.voice.id,
        language=first.voice.language,
        speed=first.speed,
        sample_rate=first.engine.sample_rate,
        pause_ms=settings.sentence_pause_ms,
        part_objects=tuple(p.object_name for p in plans),
        output=output or f"{job_dir(job_id)}audio.{fmt.extension}",
        manifest=manifest or manifest_name(job_id),
        origin=origin or {},
        owner=owner,
        scope=scope,
        marks=first.marks,
        subtitles=request.subtitles,
        part_starts=cut.starts if part_marks else (),
        pauses=cut.pauses,
        part_digests=tuple(request_digest(part) for part in part_requests),
    )
    store.create(record_name(job_id), job.to_json(), JSON, {"job_id": job_id})
    messages = [
        Message(
            {"job_id": job_id, "part": n, "parts": len(plans), "request": part.model_dump(mode="json")},
            {PART_ATTRIBUTE: f"{job_id}/{n}"},
        )
        for n, part in enumerate(part_requests)
    ]
    return Submitted(job, published=publish_once(store, job_id, publisher, messages))


def _markup_cut(source: str, document: Document, size: int, sample_rate: int, settings: Settings) -> Cut:
    """An SSML job's parts: its markup cut between utterances (``function.jobs.markup_parts``)."""
    parts = markup_parts(
        source,
        document,
        max_chars=size,
        max_bytes=settings.ssml_max_bytes,
        sample_rate=sample_rate,
        pause_ms=settings.sentence_pause_ms,
    )
    return Cut(
        [{"ssml": part.ssml} for part in parts],
        tuple(part.shift for part in parts),
        tuple(part.pause_samples for part in parts),
        tuple(part.document for part in parts),
    )


def _check_encoding(fmt: str, chars: int, speed: float, settings: Settings) -> None:
    """A 400 naming ``format`` when the job's audio is surely too long to encode in the delivery
    that finishes it: inside one event's budget less a part's synthesis (the assembly also stops
    at that budget, whatever this estimate said: ``function.jobs.assemble``)."""
    cost = ENCODE_S_PER_AUDIO_S.get(fmt)
    if cost is None:
        return
    budget_s = settings.event_timeout_s * pipeline.TIMEOUT_BUDGET * (1 - settings.job_part_budget)
    fits = int(budget_s / (cost * MIN_AUDIO_S_PER_CHAR / speed))
    if chars > fits:
        raise bad_field(
            "format",
            f"{chars} characters of {fmt} cannot be encoded within one event ({settings.event_timeout_s} s): "
            f"at most about {fits} fit; choose wav or pcm (joined without encoding) or split the document",
            code="job_too_long_for_format",
        )


def part_starts(text: str, parts: list[str]) -> tuple[int, ...]:
    """Where each part begins in the job's text (parts join its sentences with line breaks where
    the text may have a blank: found by alignment, as a piece is in a request's text)."""
    locator = Locator(text)
    return tuple(locator.piece(part)[0] for part in parts)


def _next_attempt(store: ObjectStore, job_id: str) -> str:
    """The job to run for a document whose earlier attempts failed: a failed job is over (its
    manifest is write-once), so re-sending the document starts the next attempt under a new id,
    derived from the first, whose parts that succeeded before are cache hits. A job that is
    running or succeeded is returned as it is."""
    attempt, number = job_id, 1
    while (final := store.stat(manifest_name(attempt))) is not None and (
        final.metadata.get("status") == "failed"
    ):
        number += 1
        attempt = hashlib.sha256(f"{job_id}/{number}".encode()).hexdigest()[:32]
    return attempt


def _job_id(
    keys: list[str],
    fmt: str,
    output: str | None,
    manifest: str | None,
    pause_ms: int,
    owner: str | None,
    marked: tuple[str | None, ...] = (),
    laid_out: tuple[tuple[int, ...], ...] = (),
) -> str:
    # Without an owner, marks or markup, the material (and so the id) is what it was before any
    # of them existed.
    extra = [
        *([owner] if owner else []),
        *([list(marked)] if marked else []),
        *([laid_out] if laid_out else []),
    ]
    material = json.dumps([keys, fmt, output, manifest, pause_ms, *extra])
    return hashlib.sha256(material.encode()).hexdigest()[:32]
