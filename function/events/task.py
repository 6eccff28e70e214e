"""What one event asks for (a ``Task``), and where its audio and manifest go.

The names: a caller's ``output`` becomes the audio's name (the format's extension added) and its
manifest sits beside it (``<audio>.json``); it may not fall into the service's own namespaces
(``function.namespaces``). Without one, the audio takes its content address and the manifest goes
under ``jobs/``, named by the caller's ``job_id`` or else the event id.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from function.audio import FORMATS, UNSUPPORTED, AudioFormat
from function.errors import ApiError, bad_field
from function.namespaces import RULE, SERVICE_PREFIX, reserved
from function.pipeline import resolve_format
from function.schema import EventRequest

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

# Manifests of jobs whose audio has no name the caller knows (a namespace no caller can name).
JOB_MANIFESTS = SERVICE_PREFIX
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MAX_NAME_BYTES = 512
# A file name's limit on most file systems (a local store), and what fake-gcs-server accepts.
MAX_SEGMENT_BYTES = 255
# Control (C0, DEL, C1 such as U+0085), format (bidi overrides, zero widths), line and paragraph
# separators, surrogates, private use, unassigned: nothing a caller could see or type in a name.
_NOT_IN_NAMES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


@dataclass(frozen=True)
class Source:
    """The event that asked for the work, as recorded in the manifest and the log."""

    id: str
    type: str
    subject: str | None
    source: str

    @classmethod
    def of(cls, event: CloudEvent) -> Source:
        return cls(event["id"], event["type"], event.get("subject"), event["source"])


@dataclass(frozen=True)
class Task:
    """One event's work: a request (or why it cannot be served) and where the results go."""

    source: Source
    manifest: str  # the manifest's object name
    request: EventRequest | None = None
    # Resolved once, where the output is named after it. None otherwise: the plan resolves it then,
    # in its own order of checks.
    format: AudioFormat | None = None
    output: str | None = None  # the audio's name; None: its content address
    job_id: str | None = None
    input_uri: str | None = None  # the dropped file it came from
    error: ApiError | None = None

    def refused(self, error: ApiError) -> Task:
        """The same event, manifest and input, with the reason it cannot be served."""
        return Task(self.source, self.manifest, input_uri=self.input_uri, error=error)

    def record(self) -> dict[str, Any]:
        """The manifest's fields about the job itself."""
        return {"job_id": self.job_id, "source": asdict(self.source), "input": self.input_uri}


def named_task(
    source: Source, request: EventRequest, output: str | None, input_uri: str | None = None
) -> Task:
    """The task for ``request``, with its audio at ``output`` (or its content address) and its
    manifest beside the audio (or under jobs/). Raises the 400 of a bad job id or output name."""
    job_id = request.job_id
    if job_id is not None and not JOB_ID.fullmatch(job_id):
        raise bad_field("job_id", f"must match {JOB_ID.pattern}")
    if output is None:
        return Task(source, job_manifest(job_id, source), request, job_id=job_id, input_uri=input_uri)
    fmt = resolve_format(request.format, "format")
    name = output_name(output, fmt)
    return Task(source, f"{name}.json", request, fmt, name, job_id, input_uri)


def output_name(requested: str, fmt: AudioFormat) -> str:
    """A caller's object name, relative to the output prefix, ending in the format's extension."""
    parts = requested.split("/")
    if (
        any(part == "" or part.startswith(".") for part in parts)
        or "\\" in requested
        or any(unicodedata.category(c) in _NOT_IN_NAMES for c in requested)
        or len(requested.encode()) > MAX_NAME_BYTES
        or any(len(part.encode()) > MAX_SEGMENT_BYTES for part in parts)
    ):
        raise bad_field(
            "output",
            f"{requested!r} must be a relative object name: no leading '/', no empty segments or "
            f"segments starting with '.', no backslashes, control or format characters or line "
            f"separators, at most {MAX_NAME_BYTES} bytes and {MAX_SEGMENT_BYTES} bytes a segment",
        )
    if reserved(requested):
        raise bad_field(
            "output", f"{requested!r} is one of the service's own names: {RULE}", "reserved_output"
        )
    suffix = PurePosixPath(requested).suffix.lower().lstrip(".")
    if suffix == fmt.extension:
        return requested
    if suffix in FORMATS or suffix in UNSUPPORTED:
        raise bad_field("output", f"{requested!r} ends in .{suffix} but the format is {fmt.name}")
    return f"{requested}.{fmt.extension}"


def job_manifest(job_id: str | None, source: Source) -> str:
    """The manifest's name under jobs/: the caller's job id, else the event id made safe."""
    if job_id:
        return f"{JOB_MANIFESTS}{job_id}.json"
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", source.id)
    if not JOB_ID.fullmatch(safe):  # empty, too long for a file name, or leading '.', '_' or '-'
        safe = hashlib.sha256(source.id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{JOB_MANIFESTS}{safe}.json"
