"""The HTTP API as an OpenAPI 3.1 document (``GET /openapi.json``): request bodies are the pydantic
request models' own JSON schemas, so the document cannot drift from what the server validates;
the deployment's limits (characters, body bytes) are filled in from its settings. The tests fuzz
the running server from this document (Schemathesis)."""

from __future__ import annotations

from typing import Any

from function.audio import FORMATS
from function.config import HEALTH_ROUTE, Settings
from function.jobs import JobRequest
from function.schema import OpenAISpeechRequest, SpeakRequest, SynthesizeRequest
from function.streaming import SSE_CONTENT_TYPE

REF = "#/components/schemas/{model}"

ERROR = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "type"],
            "properties": {
                "code": {"type": "string", "minLength": 1},
                "message": {"type": "string", "minLength": 1},
                "type": {"enum": ["invalid_request_error", "server_error"]},
                "field": {"type": "string"},
                "param": {"type": "string"},
            },
        }
    },
}

# One speech mark (function.marks; docs: README "Speech marks").
MARK = {
    "type": "object",
    "required": ["type", "start_s", "end_s", "start_sample", "end_sample", "start", "end", "value"],
    "properties": {
        "type": {"enum": ["sentence", "word"]},
        "start_s": {"type": "number", "minimum": 0},
        "end_s": {"type": "number", "minimum": 0},
        "start_sample": {"type": "integer", "minimum": 0},
        "end_sample": {"type": "integer", "minimum": 0},
        "start": {"type": "integer", "minimum": 0},
        "end": {"type": "integer", "minimum": 0},
        "value": {"type": "string"},
    },
}
MARKS_URIS = {"marks_uri": {"type": "string"}, "subtitles_uri": {"type": ["string", "null"]}}

RESULT = {
    "type": "object",
    "required": ["uri", "object", "format", "sample_rate", "duration_s", "voice", "engine", "cached", "url"],
    "properties": {
        "uri": {"type": "string"},
        "url": {"type": ["string", "null"]},
        "object": {"type": "string"},
        "format": {"enum": list(FORMATS)},
        "content_type": {"type": "string"},
        "sample_rate": {"type": "integer"},
        "duration_s": {"type": "number"},
        "voice": {"type": "string"},
        "language": {"type": "string"},
        "speed": {"type": "number"},
        "engine": {"type": "string"},
        "model_version": {"type": "string"},
        "cached": {"type": "boolean"},
        "cold_start": {"type": "boolean"},
        "marks": {"type": "array", "items": MARK},
        **MARKS_URIS,
    },
}

HEALTH = {
    "type": "object",
    "required": ["status", "engines", "model_loaded"],
    "properties": {
        "status": {"enum": ["ok", "degraded", "unavailable"]},
        "engines": {"type": "array", "items": {"type": "object", "required": ["name", "loaded"]}},
        "model_loaded": {"type": "boolean"},
    },
}

VOICES = {
    "type": "object",
    "required": ["engines", "voices", "default_voice", "languages", "openai_voices"],
    "properties": {"voices": {"type": "array", "items": {"type": "object", "required": ["id", "language"]}}},
}

# A job as POST /jobs accepts it and GET /jobs/<id> reports it (function.jobs; docs/jobs.md).
JOB = {
    "type": "object",
    "required": ["status", "job_id", "parts", "uri", "manifest"],
    "properties": {
        "status": {"enum": ["accepted", "running", "succeeded", "failed"]},
        "job_id": {"type": "string"},
        "parts": {"type": "integer"},
        "parts_done": {"type": "integer"},
        "chars": {"type": "integer"},
        "uri": {"type": "string"},
        "manifest": {"type": "string"},
        "status_url": {"type": "string"},
        **MARKS_URIS,
    },
}

SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string", "minLength": 1}},
}

AUDIO = {"schema": {"type": "string", "format": "binary"}}
AUDIO_TYPES = sorted({f.content_type for f in FORMATS.values()})


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }


# What any route may answer besides its success: the body and the transport errors of README "Errors".
ERRORS = {
    "400": _error("a bad field (named), or a body that is not JSON"),
    "413": _error("body over TTS_MAX_BODY_BYTES"),
    "415": _error("body not application/json"),
    "503": _error("model or storage unavailable; retry after Retry-After"),
}
SYNTHESIS_ERRORS = ERRORS | {"422": _error("the engine produced no audible speech for this text")}


def _body(model: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document(settings: Settings) -> dict[str, Any]:
    schemas: dict[str, Any] = {"Error": ERROR, "SynthesizeResult": RESULT}
    # SynthesizeRequest: also the data of a Pub/Sub synthesis message; SpeakRequest adds streaming.
    for model in (SynthesizeRequest, SpeakRequest, OpenAISpeechRequest, JobRequest):
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    limits = f"at most {settings.max_chars} characters (after normalising blanks)"
    for model, text in (
        ("SynthesizeRequest", "text"),
        ("SpeakRequest", "text"),
        ("OpenAISpeechRequest", "input"),
    ):
        schemas[model]["properties"][text]["description"] = limits
    markup = (
        f'SSML (<speak>…</speak>) instead of text, or in text with text_type "ssml": at most '
        f"{settings.ssml_max_bytes} bytes of markup; what it speaks counts against the character limit"
    )
    for model in ("SynthesizeRequest", "SpeakRequest"):
        schemas[model]["properties"]["ssml"]["description"] = markup
        # text or ssml: the model fills an absent text in when ssml is given.
        required = [name for name in schemas[model]["required"] if name != "text"]
        schemas[model] = {k: v for k, v in schemas[model].items() if k != "required"}
        if required:
            schemas[model]["required"] = required
    schemas["JobRequest"]["properties"]["text"]["description"] = (
        f"the document, at most {settings.job_max_chars} characters (or give ssml, or input)"
    )
    schemas["JobRequest"]["properties"]["ssml"]["description"] = (
        f"the document as SSML: at most {settings.job_ssml_max_bytes} bytes of markup, cut into parts "
        "between utterances; what it speaks counts against the character limit"
    )
    lexicons = (
        "pronunciation lexicons, by name (baked in) or as "
        f"gs://<input bucket>/{settings.lexicon_prefix}<name> (read on each use)"
    )
    for model in ("SynthesizeRequest", "SpeakRequest", "JobRequest"):
        schemas[model]["properties"]["lexicons"]["description"] = lexicons
    # Streams (SSE) carry the audio base64 in JSON events; the schema describes one event, as
    # OpenAPI tools read a text/event-stream (its fields: docs/streaming.md).
    audio = {"content": {kind: AUDIO for kind in AUDIO_TYPES} | {SSE_CONTENT_TYPE: {"schema": SSE_EVENT}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "serverless-tts",
            "version": "1",
            "description": f"Request bodies up to {settings.max_body_bytes} bytes. Errors: README, 'Errors'.",
        },
        "paths": {
            "/synthesize": {
                "post": {
                    "summary": "Synthesize speech; JSON describing the stored audio, or the audio bytes",
                    "parameters": [
                        {
                            "name": "response",
                            "in": "query",
                            "required": False,
                            "schema": {"enum": ["json", "audio"]},
                        }
                    ],
                    "requestBody": _body("SpeakRequest"),
                    "responses": {
                        "200": {
                            "description": "the stored audio (JSON), or its bytes (?response=audio, Accept; "
                            '"stream": true sends them as they are spoken)',
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": REF.format(model="SynthesizeResult")}
                                },
                                **audio["content"],
                            },
                        },
                        **SYNTHESIS_ERRORS,
                    },
                }
            },
            "/v1/audio/speech": {
                "post": {
                    "summary": "OpenAI-compatible speech: the audio bytes, streamed as they are spoken",
                    "requestBody": _body("OpenAISpeechRequest"),
                    "responses": {"200": {"description": "the audio", **audio}, **SYNTHESIS_ERRORS},
                }
            },
            "/jobs": {
                "post": {
                    "summary": "A long document as a job: split, fanned out over instances, joined once",
                    "requestBody": _body("JobRequest"),
                    "responses": {
                        "202": _json("accepted: where the audio and manifest will be", JOB),
                        **ERRORS,
                    },
                }
            },
            "/jobs/{job_id}": {
                "get": {
                    "summary": "A job's progress (parts done of all) or its final manifest, from storage",
                    "parameters": [
                        {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {"200": _json("the job", JOB), "404": _error("no such job")},
                }
            },
            "/voices": {"get": {"summary": "Voices", "responses": {"200": _json("voices", VOICES)}}},
            HEALTH_ROUTE: {
                "get": {
                    "summary": "Health, without loading a model",
                    "responses": {
                        "200": _json("ok, or degraded (some engine failed)", HEALTH),
                        "503": _json("no configured engine can serve", HEALTH),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
                }
            },
            **(_page_paths() if settings.page else {}),
        },
        "components": {"schemas": schemas},
    }


def _page_paths() -> dict[str, Any]:
    """The stored audio the page fetches (``function.page.stored``), behind the same keys: the
    page's own files are not API and are left out."""
    stored = {kind: AUDIO for kind in AUDIO_TYPES} | {"application/json": {"schema": {"type": "object"}}}
    return {
        "/audio/{name}": {
            "get": {
                "summary": "Stored audio by its content address (the object a synthesis named), or "
                "the speech marks stored beside it",
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {"description": "the stored object", "content": stored},
                    "400": _error("not a content address"),
                    "404": _error("no such object"),
                },
            }
        },
        "/jobs/{job_id}/audio": {
            "get": {
                "summary": "A finished job's audio, for the key that submitted it",
                "parameters": [
                    {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "the job's audio",
                        "content": {kind: AUDIO for kind in AUDIO_TYPES},
                    },
                    "404": _error("no such job"),
                    "409": _error("the job has not succeeded"),
                },
            }
        },
    }
