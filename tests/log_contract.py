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
# ...and when it asked for speech marks or subtitles: where they are stored (null when none).
MARKED = {"marks_uri", "subtitles_uri"}

# Jobs (function.jobs): POST /jobs (and an event that became a job) names the job it submitted...
JOB_SUBMITTED = {"job_id", "parts", "chars", "engine"}
# ...and each part's event says which part of which job, its part manifest, and the synthesis
# (plus job_status from the delivery that finished the job).
PART = {"job_id", "part", "parts"}
PART_DONE = PART | {"manifest"} | SYNTHESIZED

# A streamed response (function.streaming), logged when the stream ends: how it went.
STREAM = {"stream", "ttfb_ms", "chunks", "disconnected"}
# ...a stream that ended before its audio was stored (the client left, or the engine failed):
# what was asked for and the time spent, without the stored object's fields.
STREAM_UNFINISHED = {
    "format",
    "voice",
    "language",
    "speed",
    "engine",
    "model_version",
    "chars",
    "cached",
    "cold_start",
    "lookup_ms",
    "synthesis_ms",
    "encode_ms",
} | STREAM
