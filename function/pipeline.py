"""One synthesis job, shared by the HTTP and event entry points:
validate against the engine → look up the cache → synthesize → encode → store (write-once)."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from function import audio, runtime
from function.audio import FORMATS, UNSUPPORTED, AudioFormat
from function.config import Settings
from function.engines.base import Engine, Voice
from function.errors import ApiError, bad_field
from function.schema import SynthesizeRequest
from function.storage import ObjectStore, StoredObject
from function.text import normalize_text, split_sentences

# Synthesis may use this share of the platform timeout; the rest is for load, encode and upload.
TIMEOUT_BUDGET = 0.8


@dataclass(frozen=True)
class Job:
    text: str  # normalised
    voice: Voice
    speed: float
    format: AudioFormat
    key: str  # content hash of everything that determines the audio

    @property
    def object_name(self) -> str:
        """Content address: the same engine, weights, voice, text, speed and format give the same name."""
        return f"{self.key[:40]}.{self.format.extension}"


@dataclass
class Result:
    job: Job
    stored: StoredObject
    cached: bool
    sample_rate: int
    duration_s: float
    timings: dict[str, float] = field(default_factory=dict)
    audio: bytes | None = None

    def summary(self, engine: Engine) -> dict[str, Any]:
        """The response body fields (JSON) every entry point reports."""
        summary: dict[str, Any] = {
            "uri": self.stored.uri,
            "object": self.stored.name,
            "format": self.job.format.name,
            "content_type": self.job.format.content_type,
            "sample_rate": self.sample_rate,
            "duration_s": self.duration_s,
            "voice": self.job.voice.id,
            "language": self.job.voice.language,
            "speed": self.job.speed,
            "engine": engine.name,
            "model_version": engine.model_version,
            "cached": self.cached,
            "cold_start": "load_ms" in self.timings,
        }
        summary.update({k: round(v, 1) for k, v in self.timings.items()})
        return summary


def plan(
    request: SynthesizeRequest,
    engine: Engine,
    settings: Settings,
    *,
    max_chars: int,
    timeout_s: int,
) -> Job:
    """Check the request against this deployment (voices, speeds, formats, limits) or raise a 400."""
    text = normalize_text(request.text)
    if not text:
        raise bad_field("text", "is empty", code="empty_text")
    if len(text) > max_chars:
        raise bad_field("text", f"has {len(text)} characters; the limit is {max_chars}", code="text_too_long")
    voice = resolve_voice(engine, request.voice or settings.default_voice, request.language)
    low, high = engine.speed_range
    if not low <= request.speed <= high:
        raise bad_field("speed", f"must be between {low} and {high} for engine {engine.name}")
    fmt = resolve_format(request.format, "format")
    seconds_per_char = settings.seconds_per_char or engine.seconds_per_char
    expected_s = len(text) * seconds_per_char
    if expected_s > timeout_s * TIMEOUT_BUDGET:
        fits = int(timeout_s * TIMEOUT_BUDGET / seconds_per_char)
        raise bad_field(
            "text",
            f"{len(text)} characters need about {expected_s:.0f} s to synthesize, more than this "
            f"endpoint's {timeout_s} s timeout allows (about {fits} characters fit); publish it to the "
            "asynchronous Pub/Sub path instead (see README, 'Events')",
            code="text_too_long_for_timeout",
        )
    speed = round(request.speed, 3)
    return Job(text, voice, speed, fmt, job_key(engine, voice, text, speed, fmt))


def resolve_voice(engine: Engine, requested: str | None, language: str | None) -> Voice:
    voices = engine.voices()
    if requested is None:
        speakers = [v for v in voices if language is None or v.speaks(language)]
        if not speakers:
            raise bad_field("language", f"no voice speaks {language!r}; languages: {_languages(voices)}")
        return (
            speakers[0] if language else next((v for v in voices if v.id == engine.default_voice), voices[0])
        )
    for voice in voices:
        if requested == voice.id or requested.lower() in (a.lower() for a in voice.aliases):
            if language is not None and not voice.speaks(language):
                raise bad_field("language", f"voice {voice.id!r} speaks {voice.language}, not {language!r}")
            return voice
    known = ", ".join(name for v in voices for name in (v.id, *v.aliases))
    raise bad_field("voice", f"unknown voice {requested!r}; known voices: {known}", code="unknown_voice")


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


def _languages(voices: list[Voice]) -> str:
    return ", ".join(sorted({v.language for v in voices}))


def job_key(engine: Engine, voice: Voice, text: str, speed: float, fmt: AudioFormat) -> str:
    key = json.dumps([engine.name, engine.model_version, voice.id, text, speed, fmt.name], ensure_ascii=False)
    return hashlib.sha256(key.encode()).hexdigest()


def execute(
    job: Job, store: ObjectStore, settings: Settings, *, want_audio: bool, name: str | None = None
) -> Result:
    """Answer from the store when the object exists; otherwise synthesize, encode and store it."""
    target = name or job.object_name
    timings: dict[str, float] = {}
    started = time.perf_counter()
    existing = store.stat(target)
    timings["lookup_ms"] = _ms(started)
    if existing is not None:
        return _from_store(job, existing, store, timings, want_audio)

    engine, load_ms = runtime.loaded_engine()
    if load_ms is not None:
        timings["load_ms"] = load_ms
    started = time.perf_counter()
    samples = synthesize(engine, job, settings.sentence_pause_ms)
    timings["synthesis_ms"] = _ms(started)

    started = time.perf_counter()
    data, rate = audio.encode(samples, engine.sample_rate, job.format)
    timings["encode_ms"] = _ms(started)
    duration_s = round(len(samples) / engine.sample_rate, 3)
    metadata = {
        "engine": engine.name,
        "model_version": engine.model_version,
        "voice": job.voice.id,
        "speed": str(job.speed),
        "sample_rate": str(rate),
        "duration_s": str(duration_s),
        "job_key": job.key,
        "chars": str(len(job.text)),
    }
    started = time.perf_counter()
    stored, created = store.create(target, data, job.format.content_type, metadata)
    timings["upload_ms"] = _ms(started)
    if not created:  # another instance finished the same job first: serve its object
        return _from_store(job, stored, store, timings, want_audio)
    return Result(job, stored, False, rate, duration_s, timings, data if want_audio else None)


def synthesize(engine: Engine, job: Job, pause_ms: int) -> np.ndarray:
    """Sentence by sentence, joined with a short pause (bounded memory per call, natural phrasing)."""
    pause = audio.silence(pause_ms / 1000, engine.sample_rate)
    pieces: list[np.ndarray] = []
    for sentence in split_sentences(job.text):
        if pieces:
            pieces.append(pause)
        pieces.append(engine.synthesize(sentence, job.voice.id, job.speed))
    return np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def _from_store(
    job: Job, stored: StoredObject, store: ObjectStore, timings: dict[str, float], want_audio: bool
) -> Result:
    if stored.metadata.get("job_key") != job.key:
        # Only a caller-chosen name can hold other audio; it is never overwritten.
        raise ApiError(409, "output_exists", f"{stored.uri} already holds audio for a different request")
    data = store.read(stored.name) if want_audio else None
    rate = int(stored.metadata.get("sample_rate", 0))
    duration = float(stored.metadata.get("duration_s", 0.0))
    return Result(job, stored, True, rate, duration, timings, data)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
