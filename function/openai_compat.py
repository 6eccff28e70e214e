"""OpenAI's /v1/audio/speech request, translated into this service's synthesis request."""

from __future__ import annotations

from function.config import Settings
from function.engines.base import Engine
from function.errors import bad_field
from function.schema import OpenAISpeechRequest, SynthesizeRequest

# Our request fields under their OpenAI names, for error messages.
OPENAI_FIELDS = {"text": "input", "format": "response_format"}


def voice_table(engine: Engine, settings: Settings) -> dict[str, str]:
    """OpenAI voice name -> this deployment's voice (TTS_VOICE_MAP overrides the engine's table)."""
    return {**engine.openai_voices, **settings.voice_map}


def to_synthesize_request(
    request: OpenAISpeechRequest, engine: Engine, settings: Settings
) -> SynthesizeRequest:
    table = voice_table(engine, settings)
    native = {name for v in engine.voices() for name in (v.id, *v.aliases)}
    voice = table.get(request.voice.lower(), request.voice)
    if voice not in native:
        raise bad_field(
            "voice",
            f"unknown voice {request.voice!r}; OpenAI voices mapped here: {', '.join(sorted(table))}; "
            f"native voices: {', '.join(sorted(native))}",
            code="unknown_voice",
        )
    # OpenAI accepts 0.25-4.0; the engine's own range is narrower, so clamp rather than refuse.
    low, high = engine.speed_range
    return SynthesizeRequest(
        text=request.input,
        voice=voice,
        speed=min(max(request.speed, low), high),
        format=request.response_format,
    )
