"""Structured JSON logs on stdout, in the shape Cloud Logging parses (severity, message, trace)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any

# The trace of the request being served; every log line written while serving it carries it.
_trace: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("trace", default={})  # noqa: B039

TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
# Characters JSON leaves unescaped that some readers take as line ends (Python's splitlines, JS):
# escaped, so one entry is one line for every reader, whatever a caller put in an object name.
_LINE_BREAKS = str.maketrans({c: f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "logger": record.name,
        }
        entry.update(getattr(record, "fields", {}))
        entry.update(_trace.get())
        if record.exc_info:
            # Error Reporting picks up a stack trace in the message of an ERROR entry.
            entry["message"] += "\n" + self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str).translate(_LINE_BREAKS)


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: structured fields merged into the JSON entry."""
    return {"fields": values}


def trace_context(headers: Any, project: str | None) -> dict[str, str]:
    """Cloud Logging trace fields from X-Cloud-Trace-Context or W3C traceparent."""
    trace_id = span_id = ""
    if cloud := headers.get("X-Cloud-Trace-Context"):
        trace_id, _, rest = cloud.partition("/")
        span_id = rest.partition(";")[0]
    elif parent := headers.get("traceparent"):
        parts = parent.split("-")
        if len(parts) == 4:
            trace_id, span_id = parts[1], parts[2]
    if not trace_id:
        return {}
    context = {TRACE_KEY: f"projects/{project}/traces/{trace_id}" if project else trace_id}
    if span_id:
        context[SPAN_KEY] = span_id
    return context


def bind_trace(context: dict[str, str]) -> contextvars.Token:
    return _trace.set(context)


def unbind_trace(token: contextvars.Token) -> None:
    _trace.reset(token)


def annotate(**values: str) -> None:
    """Add fields to every line logged until the frame ends (e.g. the caller's API key id);
    ``unbind_trace`` drops them with the trace."""
    _trace.set(_trace.get() | values)
