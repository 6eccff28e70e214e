"""The HTTP adapter: routes, JSON bodies and responses, and the request's log line (``function.frame``)."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from flask import Request, Response

from function import frame
from function.errors import ApiError
from function.logs import trace_context

log = logging.getLogger("function.request")


class StreamBody(Protocol):
    """A response body sent while it is made (``function.streaming``): the WSGI server iterates
    and closes it; it calls ``when_over``'s ``end`` once, with its log fields and any failure after
    the first byte, when it is over (the request's log line waits for that)."""

    content_type: str
    headers: dict[str, str]

    def __iter__(self) -> Iterator[bytes]: ...

    def close(self) -> None: ...

    def when_over(
        self, reference: str, end: Callable[[Mapping[str, Any], frame.Failure | None], None]
    ) -> None: ...


@dataclass(frozen=True)
class Reply:
    """What a route handler returns: the response, and what its log line says beyond the request
    itself (timings, cache hit, voice, characters: never the text)."""

    response: Response
    log: Mapping[str, Any] = field(default_factory=dict)
    stream: StreamBody | None = None

    @classmethod
    def json(cls, body: Any, log: Mapping[str, Any] | None = None) -> Reply:
        return cls(json_response(body), log or {})

    @classmethod
    def audio(cls, data: bytes, content_type: str, headers: dict[str, str], log: Mapping[str, Any]) -> Reply:
        return cls(Response(data, status=200, content_type=content_type, headers=headers), log)

    @classmethod
    def streamed(cls, body: StreamBody) -> Reply:
        """A chunked response whose log line is written when the stream ends."""
        return cls(Response(body, status=200, content_type=body.content_type, headers=body.headers), {}, body)

    @classmethod
    def error(cls, error: ApiError) -> Reply:
        return cls(json_response(error.body(), error.status, error.headers), error.log_fields())


# Called with the request, and the path's parameters by name for routes such as "/jobs/<job_id>".
Handler = Callable[..., Reply]
Routes = Mapping[tuple[str, str], Handler]


@dataclass(frozen=True)
class Served:
    """One HTTP request and its reply, as the frame logs it."""

    request: Request
    request_id: str
    reply: Reply
    failure: frame.Failure | None = None

    def carry_on(self, end: Callable[[frame.Outcome], None]) -> bool:
        """A stream is logged when it ends (``frame.Ongoing``), with how it ended."""
        stream = self.reply.stream
        if stream is None:
            return False

        def ended(log: Mapping[str, Any], failure: frame.Failure | None) -> None:
            end(replace(self, reply=replace(self.reply, log=log), failure=failure))

        stream.when_over(self.request_id, ended)
        return True

    def log_line(self, latency_s: float) -> frame.LogLine:
        request, status = self.request, self.reply.response.status_code
        failure = self.failure
        # A stream that failed after its first byte was sent as a 200; its line says how it ended.
        outcome = failure.error.status if failure is not None else status
        severity = logging.ERROR if outcome >= 500 else logging.WARNING if outcome >= 400 else logging.INFO
        http = {
            "requestMethod": request.method,
            "requestUrl": request.path,
            "status": status,
            "latency": f"{latency_s:.3f}s",
            "userAgent": request.headers.get("User-Agent", ""),
        }
        fields: dict[str, Any] = {"httpRequest": http, "request_id": self.request_id, **self.reply.log}
        if failure is not None and outcome >= 500:
            fields["cause"] = str(failure.cause)  # the caller's message hides it; the log keeps it
        traceback = failure.cause if failure is not None and failure.is_bug else None
        return frame.LogLine(severity, f"{request.method} {request.path} {status}", fields, traceback)


def serve(
    request: Request, routes: Routes, gcp_project: str | None, guard: Callable[[Request], None] | None = None
) -> Response:
    """Route one request inside the frame: every failure becomes a JSON error, and one line is logged.
    ``guard`` (``function.auth``) runs first and may refuse the request."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex

    def work() -> Served:
        if guard is not None:
            guard(request)
        return Served(request, request_id, _dispatch(request, routes))

    def failed(failure: frame.Failure) -> Served:
        return Served(request, request_id, Reply.error(failure.error), failure)

    trace = trace_context(request.headers, gcp_project)
    response = frame.run(log, trace, request_id, work, failed).reply.response
    response.headers["X-Request-Id"] = request_id
    return response


def _dispatch(request: Request, routes: Routes) -> Reply:
    path = request.path.rstrip("/") or "/"
    # HEAD is GET without the body (werkzeug drops it from the response).
    method = "GET" if request.method == "HEAD" else request.method
    for (route_method, route), handler in routes.items():
        params = _match(route, path)
        if route_method == method and params is not None:
            return handler(request, **params)
    allowed = sorted(
        {m for method, route in routes if _match(route, path) is not None for m in _with_head(method)}
    )
    if allowed:
        raise ApiError(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {path}; use {', '.join(allowed)}",
            headers={"Allow": ", ".join(allowed)},
        )
    known = ", ".join(sorted({f"{m} {p}" for m, p in routes}))
    raise ApiError(404, "not_found", f"no route {path}; routes: {known}")


def _match(route: str, path: str) -> dict[str, str] | None:
    """The path parameters when ``path`` fits ``route`` (``/jobs/<job_id>``: one segment each)."""
    if "<" not in route:
        return {} if route == path else None
    want, have = route.split("/"), path.split("/")
    if len(want) != len(have):
        return None
    params: dict[str, str] = {}
    for pattern, segment in zip(want, have, strict=True):
        if pattern.startswith("<") and pattern.endswith(">") and segment:
            params[pattern[1:-1]] = segment
        elif pattern != segment:
            return None
    return params


def _with_head(method: str) -> tuple[str, ...]:
    return (method, "HEAD") if method == "GET" else (method,)


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
    except (ValueError, RecursionError) as exc:  # also: an integer over 4300 digits; deep nesting
        raise invalid_json(exc) from None


def invalid_json(exc: BaseException) -> ApiError:
    """The 400 for a body that cannot be read as JSON (undecodable, malformed, too deeply nested)."""
    why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
    return ApiError(400, "invalid_json", f"is not valid JSON: {why}", field="body")


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, "body_too_large", f"exceeds the limit of {max_bytes} bytes", field="body")


def wants_audio(request: Request) -> bool:
    """``?response=audio``, or an Accept header that names an audio type (``?response=json``: JSON)."""
    asked = request.args.getlist("response")
    if asked and (len(asked) > 1 or asked[0] not in ("json", "audio")):
        raise ApiError(400, "invalid_field", "must be given once, as json or audio", field="response")
    if asked:
        return asked[0] == "audio"
    return any(mimetype.startswith("audio/") for mimetype, _ in request.accept_mimetypes)


def client_gone(request: Request) -> Callable[[], bool]:
    """Whether the caller has closed the connection, for work that outlives the first byte (a
    stream stops before its next piece). gunicorn, which functions-framework serves with, hands the
    connection's socket to the app (``gunicorn.socket``): a peek that reads end-of-file means the
    client closed it. Other servers: never (a stream still stops when a write fails)."""
    connection = request.environ.get("gunicorn.socket")
    if connection is None:
        return lambda: False

    def gone() -> bool:
        try:
            return connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:  # nothing to read: still connected
            return False
        except OSError:  # reset
            return True

    return gone


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json", headers=headers
    )
