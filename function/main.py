"""serverless-tts entry points, served by functions-framework (one request per instance).

The story of a request: parse the body → route it to an engine and voice (the caller's, or one
for the text's language) and check it (speed, format, limits) → answer from storage if this exact
audio exists → otherwise load that engine's model (its first request only), synthesize, encode,
store write-once → answer JSON or the audio bytes (or stream them as each sentence is spoken,
``function.streaming``). Every request runs in one frame (trace, timer,
error mapping, one log line: ``function.frame``); handlers return what to answer and to log.
Events (the same image, target ``synthesize_event``) run that story for a Pub/Sub message or a
dropped file and record the outcome in a manifest beside the audio (``function.events``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import flask
import functions_framework
from flask import Request, Response
from werkzeug.exceptions import NotFound

from function import auth, events, jobs, openapi, page, pipeline, streaming, web
from function.config import HEALTH_ROUTE, get_settings
from function.errors import renamed_fields
from function.logs import configure
from function.openai_compat import OPENAI_FIELDS, to_synthesize_request, voice_tables
from function.registry import Engines
from function.schema import OpenAISpeechRequest, SpeakRequest, StreamFormat, SynthesizeRequest, parse
from function.storage import open_store
from function.web import Reply

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

settings = get_settings()
configure(settings.log_level)
store = open_store(settings.output_uri)  # no network until first use
engines = Engines(settings)  # each engine is built on first use and loaded by its first synthesis
keys = auth.KeyRing(settings.api_keys, settings.api_keys_file)  # none configured: nothing is checked


def synthesize_route(request: Request) -> Reply:
    body = parse(SpeakRequest, web.json_body(request, settings.max_body_bytes))
    stream = body.stream_format if body.stream else None
    return speak(request, body, as_audio=web.wants_audio(request), stream=stream)


def openai_speech_route(request: Request) -> Reply:
    body = parse(OpenAISpeechRequest, web.json_body(request, settings.max_body_bytes))
    with renamed_fields(OPENAI_FIELDS):
        translated = to_synthesize_request(body, engines, settings)
    return speak(request, translated, as_audio=True, fields=OPENAI_FIELDS, stream=body.stream_format)


def speak(
    request: Request,
    body: SynthesizeRequest,
    as_audio: bool,
    fields: dict[str, str] | None = None,
    stream: StreamFormat | None = None,
) -> Reply:
    with renamed_fields(fields or {}):
        plan = pipeline.plan(
            body, engines, settings, max_chars=settings.max_chars, timeout_s=settings.request_timeout_s
        )
    plan = pipeline.scoped(plan, pipeline.cache_scope(auth.caller(request), settings))
    if stream is not None:  # sent as it is spoken; stored once complete (function.streaming)
        return Reply.streamed(streaming.open_stream(plan, store, settings, stream, web.client_gone(request)))
    result = pipeline.execute(plan, store, settings, want_audio=as_audio)
    if result.audio is not None:
        return Reply.audio(result.audio, plan.format.content_type, result.headers(), result.log_fields())
    url = store.signed_url(result.stored.name, settings.signed_url_ttl_s)
    return Reply.json(result.response_body(url), result.log_fields())


def submit_job_route(request: Request) -> Reply:
    body = parse(jobs.JobRequest, web.json_body(request, settings.job_max_body_bytes))
    submitted = jobs.accept(body, store, engines, settings, owner=auth.caller(request))
    return Reply(web.json_response(submitted.accepted(store), 202), submitted.log_fields())


def job_status_route(request: Request, job_id: str) -> Reply:
    return Reply.json(jobs.status(store, job_id, owner=auth.caller(request)))


def voices_route(_: Request) -> Reply:
    voices = [
        {
            "id": e.voice.id,
            "language": e.voice.language,
            "also_reads": list(e.voice.also_reads),
            "description": e.voice.description,
            "aliases": list(e.voice.aliases),
            "engine": e.engine.name,
            "sample_rate": e.engine.sample_rate,
        }
        for e in engines.voices()
    ]
    available = engines.available()
    return Reply.json(
        {
            "engines": [engine.name for engine in available],
            "default_voice": settings.default_voice or (available[0].default_voice if available else None),
            "voices": voices,
            "languages": sorted({v["language"] for v in voices}),
            "openai_voices": voice_tables(engines, settings),
        }
    )


def health_route(_: Request) -> Reply:
    # Never loads (or builds) an engine: probes must stay cheap during a cold start.
    # "ok" until an engine is known to fail (to build or to load): "degraded" while others serve,
    # then a 503 "unavailable" when none can.
    states = engines.health()
    failing = sum("error" in s for s in states)
    status = "ok" if not failing else "degraded" if failing < len(states) else "unavailable"
    # A key file that could not be read keeps the keys read before it: "degraded", no details.
    if status == "ok" and keys.degraded:
        status = "degraded"
    body = {"status": status, "engines": states, "model_loaded": any(s["loaded"] for s in states)}
    if keys.configured:
        body["api_keys"] = "degraded" if keys.degraded else "ok"
    return Reply(web.json_response(body, 503 if status == "unavailable" else 200))


def openapi_route(_: Request) -> Reply:
    return Reply.json(openapi.document(settings))


ROUTES: dict[tuple[str, str], web.Handler] = {
    ("POST", "/synthesize"): synthesize_route,
    ("POST", "/v1/audio/speech"): openai_speech_route,
    ("POST", "/jobs"): submit_job_route,
    ("GET", "/jobs/<job_id>"): job_status_route,
    ("GET", "/voices"): voices_route,
    ("GET", HEALTH_ROUTE): health_route,
    # Cloud Run's front end reserves some paths ending in "z" for external callers.
    ("GET", "/health"): health_route,
    ("GET", "/openapi.json"): openapi_route,
}
# GET /, the page's files and the stored audio it fetches: unless the deployment turns the page off.
ROUTES.update(page.routes(settings, store))


# Health stays open (probes carry no key), and the page's files (its API calls send the key the
# user types); every other route needs a key when keys are configured.
open_paths = {path for (_, path), handler in ROUTES.items() if handler is health_route}
if settings.page:
    open_paths |= page.OPEN_PATHS
guard = auth.guard(keys, settings.api_key_bearer, open_paths)


@functions_framework.http
def synthesize(request: Request) -> Response:
    return web.serve(request, ROUTES, settings.gcp_project, guard)


@functions_framework.cloud_event
def synthesize_event(event: CloudEvent) -> None:
    # Returning acknowledges the event; an exception is a 500, which Pub/Sub and Eventarc redeliver.
    events.handle(event, store, engines, settings)


def unreadable_body(exc: RecursionError) -> Response:
    """A body nested too deeply for JSON parsing, met before a handler runs (functions-framework
    parses event bodies itself): a 400, as for HTTP routes, not the framework's 500."""
    web.log.warning("unreadable request body: %s", type(exc).__name__)
    return web.Reply.error(web.invalid_json(exc)).response


def unrouted(_: NotFound) -> Response:
    """A path the framework's own routes cannot match (werkzeug's path converter stops at a line
    break): routed here like any other, so it is the JSON 404 every unknown path gets, logged."""
    return synthesize(flask.request)


if flask.has_app_context():  # functions-framework loads this module inside its app
    flask.current_app.register_error_handler(RecursionError, unreadable_body)
    flask.current_app.register_error_handler(NotFound, unrouted)
