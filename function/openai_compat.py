"""OpenAI's /v1/audio/speech request, translated into this service's synthesis request."""

from __future__ import annotations

from function.config import Settings
from function.engines.base import base_language
from function.errors import bad_field
from function.languages import detect
from function.registry import Engines
from function.routing import find_voice
from function.schema import OpenAISpeechRequest, SynthesizeRequest

# Our request fields under their OpenAI names, for error messages.
OPENAI_FIELDS = {"text": "input", "format": "response_format"}


def voice_tables(engines: Engines, settings: Settings) -> dict[str, dict[str, str]]:
    """Base language -> OpenAI voice name -> this deployment's voice. The first engine with a table
    for a language owns it; TTS_VOICE_MAP overrides ("alloy" for every language, "zh:alloy" for one)."""
    tables: dict[str, dict[str, str]] = {}
    for engine in engines.available():
        for language, table in engine.openai_voices.items():
            tables.setdefault(language, dict(table))
    for key, voice in settings.voice_map.items():
        language, _, name = key.rpartition(":")
        for lang in [base_language(language)] if language else list(tables) or ["en"]:
            tables.setdefault(lang, {})[name.lower()] = voice
    return tables


def to_synthesize_request(
    request: OpenAISpeechRequest, engines: Engines, settings: Settings
) -> SynthesizeRequest:
    native = {name for e in engines.voices() for name in (e.voice.id, *e.voice.aliases)}
    voice: str | None = request.voice
    if voice not in native:
        tables = voice_tables(engines, settings)
        detected = detect(request.input)
        language = detected.primary if detected else None
        if language is not None and language not in tables:
            # No voice here reads the text's language: routing refuses it by language, without
            # naming a voice the caller never chose (OpenAI's names stand for one voice per language).
            voice = None
        else:
            table = tables.get(language or "", tables.get(next(iter(tables), ""), {}))
            voice = table.get(request.voice.lower(), request.voice)
            if voice not in native:
                mapped = sorted({name for table in tables.values() for name in table})
                raise bad_field(
                    "voice",
                    f"unknown voice {request.voice!r}; OpenAI voices mapped here: {', '.join(mapped)}; "
                    f"native voices: {', '.join(sorted(native))}",
                    code="unknown_voice",
                )
    speed = request.speed
    if voice is not None:
        # OpenAI accepts 0.25-4.0; the engine's own range is narrower, so clamp rather than refuse.
        low, high = find_voice(engines.voices(), voice).engine.speed_range
        speed = min(max(speed, low), high)
    return SynthesizeRequest(text=request.input, voice=voice, speed=speed, format=request.response_format)
