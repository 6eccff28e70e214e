"""serverless-tts entry points, served by functions-framework (one request per instance).

The story of a request: parse the body → check it against the engine (voice, speed, format,
limits) → answer from storage if this exact audio exists → otherwise load the model (first
request only), synthesize, encode, store write-once → answer JSON or the audio bytes.
Events (the same image, target ``synthesize_event``) run that story for a Pub/Sub message or a
dropped file and record the outcome in a manifest beside the audio.
"""

from __future__ import annotations

import functions_framework
from cloudevents.http import CloudEvent
from flask import Request, Response

from function import events, pipeline, runtime, web
from function.config import HEALTH_ROUTE, get_settings
from function.errors import renamed_fields
from function.logs import configure
from function.openai_compat import OPENAI_FIELDS, to_synthesize_request, voice_table
from function.schema import OpenAISpeechRequest, SynthesizeRequest, parse
from function.storage import open_store

settings = get_settings()
configure(settings.log_level)
store = open_store(settings.output_uri)  # no network until first use


def synthesize_route(request: Request) -> Response:
    body = parse(SynthesizeRequest, web.json_body(request, settings.max_body_bytes))
    return speak(body, as_audio=web.wants_audio(request))


def openai_speech_route(request: Request) -> Response:
    body = parse(OpenAISpeechRequest, web.json_body(request, settings.max_body_bytes))
    return speak(to_synthesize_request(body, runtime.engine(), settings), as_audio=True, fields=OPENAI_FIELDS)


def speak(body: SynthesizeRequest, as_audio: bool, fields: dict[str, str] | None = None) -> Response:
    engine = runtime.engine()
    with renamed_fields(fields or {}):
        job = pipeline.plan(
            body, engine, settings, max_chars=settings.max_chars, timeout_s=settings.request_timeout_s
        )
    result = pipeline.execute(job, store, settings, want_audio=as_audio)
    summary = result.summary(engine)
    web.note(**{k: v for k, v in summary.items() if k not in ("uri", "content_type")}, chars=len(job.text))
    if as_audio and result.audio is not None:
        return web.audio_response(result.audio, job.format.content_type, summary)
    summary["url"] = store.signed_url(result.stored.name, settings.signed_url_ttl_s)
    return web.json_response(summary)


def voices_route(_: Request) -> Response:
    engine = runtime.engine()
    voices = [
        {
            "id": v.id,
            "language": v.language,
            "description": v.description,
            "aliases": list(v.aliases),
            "engine": engine.name,
            "sample_rate": engine.sample_rate,
        }
        for v in engine.voices()
    ]
    return web.json_response(
        {
            "engine": engine.name,
            "default_voice": settings.default_voice or engine.default_voice,
            "voices": voices,
            "openai_voices": voice_table(engine, settings),
        }
    )


def health_route(_: Request) -> Response:
    # Never loads (or even constructs) the engine: probes must stay cheap during a cold start.
    return web.json_response({"status": "ok", "engine": settings.engine, "model_loaded": runtime.is_loaded()})


ROUTES: dict[tuple[str, str], web.Handler] = {
    ("POST", "/synthesize"): synthesize_route,
    ("POST", "/v1/audio/speech"): openai_speech_route,
    ("GET", "/voices"): voices_route,
    ("GET", HEALTH_ROUTE): health_route,
    # Cloud Run's front end reserves some paths ending in "z" for external callers.
    ("GET", "/health"): health_route,
}


@functions_framework.http
def synthesize(request: Request) -> Response:
    return web.serve(request, ROUTES, settings)


@functions_framework.cloud_event
def synthesize_event(event: CloudEvent) -> None:
    # Returning acknowledges the event; an exception is a 500, which Pub/Sub and Eventarc redeliver.
    events.handle(event, store, settings)
