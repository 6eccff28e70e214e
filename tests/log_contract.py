"""The fields of a request's one log line: a contract, since metrics are derived from them (README,
"Logs"). A test pins each shape exactly; adding a field is a decision, dropping one breaks metrics."""

from __future__ import annotations

# Every JSON line (function.logs), and the trace when the caller sent one.
ENTRY = {"severity", "message", "time", "logger"}
TRACE = {"logging.googleapis.com/trace", "logging.googleapis.com/spanId"}

HTTP = ENTRY | {"httpRequest", "request_id", "latency_ms"}
HTTP_REQUEST = {"requestMethod", "requestUrl", "status", "latency", "userAgent"}
EVENT = ENTRY | {"event_id", "event_type", "subject", "outcome", "latency_ms"}

# A synthesis answered (pipeline.Result.log_fields): what, how, and the timings.
RESULT = {
    "uri",
    "object",
    "format",
    "sample_rate",
    "duration_s",
    "voice",
    "language",
    "speed",
    "engine",
    "model_version",
    "cached",
    "cold_start",
    "chars",
    "lookup_ms",
}
# ...when it was synthesized rather than found in storage (plus load_ms on the cold start).
SYNTHESIZED = RESULT | {"synthesis_ms", "encode_ms", "upload_ms"}
ERROR = {"error", "error_field"}
