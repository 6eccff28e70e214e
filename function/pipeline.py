"""One synthesis, shared by the HTTP and event entry points: ``plan`` (route to an engine and
voice, validate), then ``execute`` (look up the cache → synthesize → encode → store, write-once)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

import numpy as np

from function import audio, marks, subtitles
from function.audio import FORMATS, UNSUPPORTED, AudioFormat
from function.config import Settings
from function.document import Document
from function.engines.base import Engine, EngineLoadError, Voice
from function.errors import ApiError, bad_field
from function.logs import fields
from function.markup import read_document
from function.namespaces import content_address
from function.registry import Engines
from function.routing import route
from function.schema import SynthesizeRequest
from function.storage import ObjectStore, StoredObject
from function.text import normalize_text

log = logging.getLogger(__name__)

# Synthesis may use this share of the platform timeout; the rest is for load, encode and upload.
TIMEOUT_BUDGET = 0.8
# Peak level below which speakable text produced no audible speech (16-bit quantisation is 3e-5).
SILENCE_PEAK = 1e-3
# Object metadata naming the audio key. The name predates ``Plan.audio_key`` and stays: objects
# already stored carry it, and a cache hit or a name conflict is decided by it.
AUDIO_KEY_METADATA = "job_key"


@dataclass(frozen=True)
class Plan:
    """What a request will be synthesized as, checked against this deployment."""

    text: str  # what the engine is given: normalised, or as sent for an engine that takes raw text
    engine: Engine
    voice: Voice
    speed: float
    format: AudioFormat
    audio_key: str  # content hash of everything that determines the audio
    # The engine's name for other audio of the same request (its streamed audio), "" for its own.
    variant: str = ""
    # Whose cache the audio is in: a caller's key id where keys scope the cache, "" shared.
    scope: str = ""
    # SSML or lexicons: what is spoken, element by element (``text`` is what it says, in characters).
    document: Document | None = None
    # Speech marks and subtitles asked for (not part of the audio key: they are stored beside the
    # audio), and the caller's text their offsets count in.
    marks: tuple[str, ...] = ()
    subtitles: str | None = None
    source: str = ""

    @property
    def key_text(self) -> str:
        """What the audio key hashes for the text (``spoken_key``)."""
        return spoken_key(self.text, self.document)

    @property
    def marked(self) -> bool:
        """Whether the request wants marks or subtitles: then they are made and stored with the audio."""
        return bool(self.marks or self.subtitles)

    @property
    def object_name(self) -> str:
        """Content address: the same engine, weights, voice, text, speed and format give the same
        name; a variant's name carries it (``<key>-stream.wav``)."""
        suffix = f"-{self.variant}" if self.variant else ""
        return f"{content_address(self.audio_key)}{suffix}.{self.format.extension}"

    def described(self) -> dict[str, Any]:
        """What the audio will be: format, voice, language, speed, engine and weights."""
        return {
            "format": self.format.name,
            "voice": self.voice.id,
            "language": self.voice.language,
            "speed": self.speed,
            "engine": self.engine.name,
            "model_version": self.engine.model_version,
        }

    def log_fields(self) -> dict[str, Any]:
        """What a log line says about the request before its audio exists: never the text."""
        return self.described() | {"chars": len(self.text)}

    def headers(self, cold_start: bool) -> dict[str, str]:
        """What an audio response says about how it is made, streamed or not (the page shows it):
        the engine and voice routing chose, the characters spoken, whether it loaded the model.
        The voice id is percent-encoded UTF-8: a header is Latin-1, and CosyVoice's ids are Chinese."""
        return {
            "X-Audio-Engine": self.engine.name,
            "X-Audio-Voice": quote(self.voice.id, safe=""),
            "X-Audio-Chars": str(len(self.text)),
            "X-Audio-Cold-Start": str(cold_start).lower(),
        }


@dataclass(frozen=True)
class Result:
    """The stored audio a plan came to, and how every entry point reports it."""

    plan: Plan
    stored: StoredObject
    cached: bool
    sample_rate: int
    duration_s: float
    timings: dict[str, float] = field(default_factory=dict)
    audio: bytes | None = None
    marks: marks.Marked | None = None

    def _fields(self) -> dict[str, Any]:
        """What every entry point says about the audio: where, what, how, and the timings."""
        fields: dict[str, Any] = {
            "uri": self.stored.uri,
            "object": self.stored.name,
            **self.plan.described(),
            "content_type": self.plan.format.content_type,
            "sample_rate": self.sample_rate,
            "duration_s": self.duration_s,
            "cached": self.cached,
            "cold_start": "load_ms" in self.timings,
        }
        return fields | self._marks_fields() | self._rounded_timings()

    def _marks_fields(self) -> dict[str, Any]:
        if self.marks is None:
            return {}
        return {"marks_uri": self.marks.uri, "subtitles_uri": self.marks.subtitles_uri}

    def _rounded_timings(self) -> dict[str, float]:
        return rounded(self.timings)

    def response_body(self, url: str | None) -> dict[str, Any]:
        """The JSON response (HTTP), with ``url``: a signed URL of the audio when the store gives one."""
        body = self._fields() | {"url": url}
        if self.marks is not None and self.plan.marks:
            body["marks"] = marks.shown(self.marks.doc["marks"], self.plan.marks)
        return body

    def headers(self) -> dict[str, str]:
        """An audio response's headers: where the audio is stored and what it is."""
        return {
            "X-Audio-Uri": self.stored.uri,
            "X-Audio-Cached": str(self.cached).lower(),
            "X-Audio-Duration-S": str(self.duration_s),
            "X-Audio-Sample-Rate": str(self.sample_rate),
            **self.plan.headers("load_ms" in self.timings),
        } | self.marks_headers()

    def marks_headers(self) -> dict[str, str]:
        """Where the marks and subtitles are stored, when the request asked for them."""
        if self.marks is None:
            return {}
        headers = {"X-Marks-Uri": self.marks.uri}
        if self.marks.subtitles_uri is not None:
            headers["X-Subtitles-Uri"] = self.marks.subtitles_uri
        return headers

    def log_fields(self) -> dict[str, Any]:
        """The request's log line: the fields less the MIME type, and the characters (never the text)."""
        fields = self._fields()
        del fields["content_type"]
        return fields | self.plan.log_fields()

    def manifest(self) -> dict[str, Any]:
        """An event's "succeeded" manifest: the fields, the characters, and the timings apart."""
        fields = {k: v for k, v in self._fields().items() if k not in self.timings}
        return fields | {"chars": len(self.plan.text), "timings": self._rounded_timings()}


def plan(
    request: SynthesizeRequest,
    engines: Engines,
    settings: Settings,
    *,
    max_chars: int,
    timeout_s: int,
    fmt: AudioFormat | None = None,
    parsed: Document | None = None,
) -> Plan:
    """Route the request to an engine and voice and check it against this deployment (voices,
    languages, speeds, formats, limits), or raise a 400. ``fmt``: the request's format, when the
    caller has resolved it already (events name their output after it); ``parsed``: its markup,
    when the caller has parsed it already (a job's part, parsed when the job was cut)."""
    document = read_document(
        request, settings, max_chars=max_chars, max_bytes=settings.ssml_max_bytes, parsed=parsed
    )
    text = normalize_text(request.text if document is None else document.text)
    named, has, markup = "text", "has", ""
    if document is not None:  # SSML's limits count what it speaks; its markup has a limit of its own
        named, has = document.source, "speaks"
        markup = f" (and the markup's own limit is {settings.ssml_max_bytes} bytes)"
    if not text:
        raise bad_field(named, "is empty" if document is None else "speaks nothing", code="empty_text")
    if len(text) > max_chars:
        limit = f"{has} {len(text)} characters; the limit is {max_chars}{markup}"
        raise bad_field(named, limit, code="text_too_long")
    language = request.language or (document.language if document else None)
    chosen = route(engines, text, request.voice, language, settings.default_voice)
    engine, voice = chosen.engine, chosen.voice
    low, high = engine.speed_range
    if not low <= request.speed <= high:
        raise bad_field("speed", f"must be between {low} and {high} for engine {engine.name}")
    fmt = fmt or resolve_format(request.format, "format")
    seconds_per_char = settings.seconds_per_char or engine.seconds_per_char
    expected_s = len(text) * seconds_per_char
    if expected_s > timeout_s * TIMEOUT_BUDGET:
        fits = int(timeout_s * TIMEOUT_BUDGET / seconds_per_char)
        raise bad_field(
            "text",
            f"{len(text)} characters need about {expected_s:.0f} s to synthesize with {engine.name}, more "
            f"than this endpoint's {timeout_s} s timeout allows (about {fits} characters fit); publish it "
            "to the asynchronous Pub/Sub path instead (see README, 'Events')",
            code="text_too_long_for_timeout",
        )
    speed = round(request.speed, 3)
    spoken = request.text if engine.takes_raw_text and document is None else text
    if document is not None:
        document = engine.prepared(document, voice, speed)
    key = audio_key(engine, voice, spoken_key(spoken, document), speed, fmt)
    planned = Plan(spoken, engine, voice, speed, fmt, key, document=document)
    if request.marks is None and request.subtitles is None:
        return planned
    kinds = tuple(kind for kind in marks.KINDS if kind in (request.marks or ()))
    if "word" in kinds and not engine.times_words():
        raise bad_field(
            "marks",
            f"word marks are not available from engine {engine.name} (sentence marks are)",
            code="unsupported_marks",
        )
    # An SSML document's pieces carry their own offsets into the markup (the marks' source).
    source = request.ssml if request.ssml is not None else request.text
    return replace(planned, marks=kinds, subtitles=request.subtitles, source=source)


def spoken_key(text: str, document: Document | None) -> str:
    """What the audio key hashes for what is spoken: the text, or a document's own key."""
    return text if document is None else document.key()


def resolve_format(name: str, field_name: str) -> AudioFormat:
    fmt = FORMATS.get(name.lower())
    if fmt is None:
        why = f" ({UNSUPPORTED[name.lower()]})" if name.lower() in UNSUPPORTED else ""
        raise bad_field(
            field_name,
            f"unsupported format {name!r}{why}; supported: {', '.join(FORMATS)}",
            code="unsupported_format",
        )
    return fmt


def audio_key(
    engine: Engine,
    voice: Voice,
    text: str,
    speed: float,
    fmt: AudioFormat,
    variant: str = "",
    scope: str = "",
) -> str:
    names = (engine.name, engine.model_version, voice.id, text, speed, fmt.name)
    return content_key(names, variant, scope)


def content_key(names: tuple[str, str, str, str, float, str], variant: str = "", scope: str = "") -> str:
    """The audio key from names alone (engine, model version, voice, text, speed, format): what a
    job's record checks its parts against. Without a variant or scope, the key audio stored before
    either existed has."""
    tail: list[Any] = [variant, {"scope": scope}] if scope else [variant] if variant else []
    key = json.dumps([*names, *tail], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()


def cache_scope(caller: str | None, settings: Settings) -> str:
    """Whose cache a caller's audio goes in: its key id where keys are configured, unless the
    deployment shares one cache between keys (``shared_cache``); "" is the shared cache. Another
    key's identical request is then a miss, synthesized again: ``cached`` and the latency tell no
    key what another asked for."""
    return "" if caller is None or settings.shared_cache else caller


def scoped(plan: Plan, scope: str) -> Plan:
    """The plan with its audio in ``scope``'s cache (``cache_scope``)."""
    if not scope:
        return plan
    key = audio_key(plan.engine, plan.voice, plan.key_text, plan.speed, plan.format, plan.variant, scope)
    return replace(plan, audio_key=key, scope=scope)


def streamed(plan: Plan) -> Plan | None:
    """The plan of the audio a stream synthesizes when the engine's streamed audio differs from
    its whole audio (its own key and object: write-once never mixes the two); None when it does not."""
    variant = plan.engine.streamed_variant(plan.speed)
    if variant is None or plan.document is not None:  # a document is streamed as it is spoken whole
        return None
    key = audio_key(plan.engine, plan.voice, plan.key_text, plan.speed, plan.format, variant, plan.scope)
    return replace(plan, audio_key=key, variant=variant)


def execute(
    plan: Plan, store: ObjectStore, settings: Settings, *, want_audio: bool, name: str | None = None
) -> Result:
    """Answer from the store when the object exists; otherwise synthesize, encode and store it."""
    target = name or plan.object_name
    timings: dict[str, float] = {}
    existing = lookup(store, target, timings)
    if existing is not None:
        result = from_store(plan, existing, store, timings, want_audio)
        if not plan.marked:
            return result
        doc = marks.read_marks(store, target)
        if doc is None:  # the audio was stored without marks: spoken again for them (same samples)
            recorder = marks.Recorder()
            spoken(plan, settings, timings, recorder)
            doc = marks.from_recorder(recorder, plan.source, plan.engine)
        return with_marks(result, doc, store)

    recorder = marks.Recorder() if plan.marked else None
    samples = spoken(plan, settings, timings, recorder)
    started = time.perf_counter()
    data, rate = audio.encode(samples, plan.engine.sample_rate, plan.format)
    timings["encode_ms"] = elapsed_ms(started)
    result = save(plan, store, target, Encoded(data, rate, len(samples)), timings, want_audio)
    if recorder is None:
        return result
    return with_marks(result, marks.from_recorder(recorder, plan.source, plan.engine), store)


def spoken(
    plan: Plan, settings: Settings, timings: dict[str, float], recorder: marks.Recorder | None
) -> np.ndarray:
    """The plan's samples, the model loaded first if need be (``load_ms``, ``synthesis_ms``)."""
    prepare(plan.engine, timings)
    started = time.perf_counter()
    samples = synthesize(plan, settings.sentence_pause_ms, recorder)
    timings["synthesis_ms"] = elapsed_ms(started)
    return samples


def with_marks(result: Result, doc: dict[str, Any], store: ObjectStore) -> Result:
    """``result`` with its marks (``doc``) and the subtitles asked for, each stored write-once
    beside the audio (already there when a cache hit or another instance stored them)."""
    plan, name = result.plan, result.stored.name
    metadata = {AUDIO_KEY_METADATA: plan.audio_key}
    stored = marks.write_marks(store, name, doc, metadata)
    cues = None
    if plan.subtitles is not None:
        cues = subtitles.write(store, name, doc, plan.subtitles, metadata).uri
    return replace(result, marks=marks.Marked(doc, stored.uri, cues))


@dataclass(frozen=True)
class Encoded:
    """A plan's audio, encoded: the file, its sample rate, and how many samples it came from."""

    data: bytes
    sample_rate: int
    frames: int


def lookup(store: ObjectStore, target: str, timings: dict[str, float]) -> StoredObject | None:
    """The stored object named ``target``, if any (a cache hit); adds its time to ``lookup_ms``."""
    started = time.perf_counter()
    existing = store.stat(target)
    timings["lookup_ms"] = timings.get("lookup_ms", 0.0) + elapsed_ms(started)
    return existing


def prepare(engine: Engine, timings: dict[str, float]) -> None:
    """Load the engine's model if this process has not (``load_ms`` on the cold start)."""
    if (load_ms := load(engine)) is not None:
        timings["load_ms"] = load_ms


def save(
    plan: Plan,
    store: ObjectStore,
    target: str,
    encoded: Encoded,
    timings: dict[str, float],
    want_audio: bool,
) -> Result:
    """Store the audio write-once under ``target`` (``upload_ms``). When another instance stored
    the same audio first, its object is the result."""
    engine = plan.engine
    duration_s = round(encoded.frames / engine.sample_rate, 3)
    metadata = {
        "engine": engine.name,
        "model_version": engine.model_version,
        "voice": plan.voice.id,
        "speed": str(plan.speed),
        "sample_rate": str(encoded.sample_rate),
        "duration_s": str(duration_s),
        AUDIO_KEY_METADATA: plan.audio_key,
        "chars": str(len(plan.text)),
    }
    started = time.perf_counter()
    stored, created = store.create(target, encoded.data, plan.format.content_type, metadata)
    timings["upload_ms"] = elapsed_ms(started)
    if not created:  # another instance made the same audio first: serve its object
        return from_store(plan, stored, store, timings, want_audio)
    data = encoded.data if want_audio else None
    return Result(plan, stored, False, encoded.sample_rate, duration_s, timings, data)


def load(engine: Engine) -> float | None:
    """Load the engine's model on its first use in this process; the load time in ms when it did."""
    try:
        load_ms = engine.ensure_loaded()
    except EngineLoadError:
        log.exception("model load failed", extra=fields(engine=engine.name))
        raise
    if load_ms is not None:
        log.info(
            "model loaded",
            extra=fields(
                engine=engine.name,
                model_version=engine.model_version,
                load_ms=round(load_ms, 1),
                cold_start=True,
            ),
        )
    return load_ms


def synthesize(plan: Plan, pause_ms: int, recorder: marks.Recorder | None = None) -> np.ndarray:
    """The whole text as the engine speaks it; never empty or silent (nothing is stored if it is).
    ``recorder`` hears where each piece and word falls (speech marks)."""
    with plan.engine.listening(recorder) if recorder is not None else nullcontext():
        return audible(plan, list(spoken_chunks(plan, pause_ms / 1000, streamed=False)))


def spoken_chunks(plan: Plan, pause_s: float, *, streamed: bool) -> Iterator[np.ndarray]:
    """The engine's chunks for the plan: its document's, or its text's (for a stream, as the
    engine streams: ``speak_streamed``)."""
    engine, voice = plan.engine, plan.voice.id
    if plan.document is not None:
        return engine.speak_document(plan.document, voice, plan.speed, pause_s)
    speak = engine.speak_streamed if streamed else engine.speak
    return speak(plan.text, voice, plan.speed, pause_s)


def audible(plan: Plan, chunks: list[np.ndarray]) -> np.ndarray:
    """The engine's chunks as one signal, or a 422 when they hold no audible speech."""
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if not len(samples) or not np.isfinite(samples).all() or np.abs(samples).max() < SILENCE_PEAK:
        # Routing let this text through as speakable: an engine that still says nothing has a
        # front end that dropped it. Permanent for this input, so events record it and move on.
        raise ApiError(
            422,
            "no_audio",
            f"engine {plan.engine.name} produced no audible speech for this text with voice "
            f"{plan.voice.id!r}",
            field="text",
        )
    return samples


def from_store(
    plan: Plan, stored: StoredObject, store: ObjectStore, timings: dict[str, float], want_audio: bool
) -> Result:
    if stored.metadata.get(AUDIO_KEY_METADATA) != plan.audio_key:
        # Only a caller-chosen name can hold other audio; it is never overwritten.
        raise ApiError(409, "output_exists", f"{stored.uri} already holds audio for a different request")
    data = store.read(stored.name) if want_audio else None
    rate = int(stored.metadata.get("sample_rate", 0))
    duration = float(stored.metadata.get("duration_s", 0.0))
    return Result(plan, stored, True, rate, duration, timings, data)


def rounded(timings: dict[str, float]) -> dict[str, float]:
    return {name: round(ms, 1) for name, ms in timings.items()}


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.perf_counter()`` reading)."""
    return (time.perf_counter() - started) * 1000
