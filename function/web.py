"""HTTP plumbing for the entry point: routing, JSON bodies, error responses and the request log line."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from flask import Request, Response, g

from function.config import Settings
from function.engines.base import EngineLoadError
from function.errors import ApiError
from function.logs import bind_trace, fields, trace_context, unbind_trace
from function.storage import StorageError

log = logging.getLogger("function.request")

Handler = Callable[[Request], Response]
# How long a client should wait before retrying a 503 (model load or storage trouble).
RETRY_AFTER_S = "10"


def serve(request: Request, routes: dict[tuple[str, str], Handler], settings: Settings) -> Response:
    """Route one request, turn every failure into a JSON error, and log one structured line."""
    started = time.perf_counter()
    token = bind_trace(trace_context(request.headers, settings.gcp_project))
    g.log_fields = {}
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    try:
        response = _dispatch(request, routes)
    except ApiError as exc:
        response = error_response(exc)
    except EngineLoadError as exc:
        response = error_response(
            ApiError(
                503,
                "model_unavailable",
                f"the model could not be loaded: {exc}",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        )
    except StorageError:
        log.exception("storage failed")
        response = error_response(
            ApiError(
                503,
                "storage_unavailable",
                "object storage is unavailable; nothing was written",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        )
    except Exception:
        log.exception("unhandled error")
        response = error_response(ApiError(500, "internal", f"internal error (request id {request_id})"))
    response.headers["X-Request-Id"] = request_id
    latency_s = time.perf_counter() - started
    status = response.status_code
    severity = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    log.log(
        severity,
        f"{request.method} {request.path} {response.status_code}",
        extra=fields(
            httpRequest={
                "requestMethod": request.method,
                "requestUrl": request.path,
                "status": response.status_code,
                "latency": f"{latency_s:.3f}s",
                "userAgent": request.headers.get("User-Agent", ""),
            },
            request_id=request_id,
            latency_ms=round(latency_s * 1000, 1),
            **g.log_fields,
        ),
    )
    unbind_trace(token)
    return response


def _dispatch(request: Request, routes: dict[tuple[str, str], Handler]) -> Response:
    path = request.path.rstrip("/") or "/"
    handler = routes.get((request.method, path))
    if handler is not None:
        return handler(request)
    allowed = sorted(method for method, route in routes if route == path)
    if allowed:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {path}; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    known = ", ".join(sorted({f"{m} {p}" for m, p in routes}))
    raise ApiError(404, "not_found", f"no route {path}; routes: {known}")


def note(**values: Any) -> None:
    """Add fields to this request's log line (timings, cache hit, voice...)."""
    g.log_fields.update(values)


def json_body(request: Request, max_bytes: int) -> Any:
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"the body must be JSON (Content-Type: application/json), not {request.mimetype or 'none'!r}",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise _too_large(max_bytes)
    data = request.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"is not valid JSON: {exc}", field="body") from None


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"exceeds the limit of {max_bytes} bytes", field="body")


def wants_audio(request: Request) -> bool:
    """``?response=audio``, or an Accept header that names an audio type."""
    if request.args.get("response") == "audio":
        return True
    return any(mimetype.startswith("audio/") for mimetype, _ in request.accept_mimetypes)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json", headers=headers
    )


def error_response(error: ApiError) -> Response:
    g.log_fields.update(error=error.code, error_field=error.field)
    return json_response(error.body(), error.status, error.headers)


def audio_response(data: bytes, content_type: str, summary: dict[str, Any]) -> Response:
    headers = {
        "X-Audio-Uri": summary["uri"],
        "X-Audio-Cached": str(summary["cached"]).lower(),
        "X-Audio-Duration-S": str(summary["duration_s"]),
        "X-Audio-Sample-Rate": str(summary["sample_rate"]),
    }
    return Response(data, status=200, content_type=content_type, headers=headers)
