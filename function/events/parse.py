"""Reading an event into a task: one parser per event type (``PARSERS``).

A parser never raises for bad input: the 400 goes into the task, to be recorded in a "failed"
manifest. It raises ``Ignored`` for an event that is not for this function, and lets storage
trouble through (the platform redelivers).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from function.audio import FORMATS
from function.config import Settings
from function.errors import ApiError, bad_field
from function.events.task import Source, Task, job_manifest, named_task, output_name
from function.jobs.publish import accepts_jobs
from function.jobs.request import BYTES_PER_CHAR, decode_text, input_store
from function.schema import EventRequest, parse
from function.storage import ObjectStore

if TYPE_CHECKING:
    from cloudevents.http import CloudEvent

PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
STORAGE_FINALIZED = "google.cloud.storage.object.v1.finalized"
INPUT_SUFFIXES = (".txt", ".ssml", ".json")
_DECIMAL = re.compile(r"[0-9]{1,20}")
DEFAULT_FORMAT = FORMATS[EventRequest.model_fields["format"].default]


class Ignored(Exception):
    """Not for this function (another event type, an object outside the input prefix)."""


# event data, its source, the output store, the settings -> the task
Parser = Callable[[Any, Source, ObjectStore, Settings], Task]


def read_task(event: CloudEvent, source: Source, store: ObjectStore, settings: Settings) -> Task:
    """The task ``event`` asks for, read by its type's parser."""
    parser = PARSERS.get(source.type)
    if parser is None:
        raise Ignored(f"type {source.type} is not handled")
    return parser(event.data, source, store, settings)


def pubsub_message(data: Any, source: Source, store: ObjectStore, settings: Settings) -> Task:
    """A Pub/Sub message whose data is a JSON request."""
    try:
        request = parse(EventRequest, _message_body(data))
        return named_task(source, request, request.output)
    except ApiError as exc:
        return Task(source, job_manifest(None, source), error=exc)


def _message_body(data: Any) -> Any:
    try:
        encoded = data["message"]["data"]
    except (KeyError, TypeError):
        raise bad_field("message.data", "is missing: publish the request as data") from None
    try:
        return json.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, TypeError, RecursionError) as exc:  # bad UTF-8, JSON, nesting
        raise ApiError(400, "invalid_json", f"is not JSON: {_why(exc)}", "message.data") from None


def _why(exc: BaseException) -> str:
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def dropped_file(data: Any, source: Source, store: ObjectStore, settings: Settings) -> Task:
    """A file dropped under the input prefix (a .txt is the text, an .ssml its SSML, a .json a
    request): its audio
    is named after it, unless the request names an output."""
    bucket, name = (data.get("bucket"), data.get("name")) if isinstance(data, dict) else (None, None)
    if not (isinstance(bucket, str) and bucket and isinstance(name, str) and name):
        return Task(source, job_manifest(None, source), error=bad_field("data", "names no bucket and object"))
    input_uri = f"gs://{bucket}/{name}"
    if bucket != settings.input_bucket:
        # Only the configured input bucket is read, whatever bucket an event names.
        raise Ignored(f"{input_uri} is not in the input bucket {settings.input_bucket!r}")
    relative = _input_path(name, input_uri, store, settings.input_prefix)
    derived = str(relative.with_suffix(""))
    try:
        # Where a caller looks for the outcome of a file it cannot read back: the default format's.
        unread = Task(source, f"{output_name(derived, DEFAULT_FORMAT)}.json", input_uri=input_uri)
    except ApiError as exc:
        return Task(source, job_manifest(None, source), input_uri=input_uri, error=exc)
    try:
        # Longer than one event allows may still be a job (function.events.run), where jobs are on.
        jobs_on = accepts_jobs(settings)
        max_chars = max(settings.max_event_chars, settings.job_max_chars if jobs_on else 0)
        request = _read_request(bucket, name, data.get("size"), max_chars)
        return named_task(source, request, request.output or derived, input_uri)
    except ApiError as exc:
        return unread.refused(exc)


def _input_path(name: str, uri: str, store: ObjectStore, prefix: str) -> PurePosixPath:
    """The file's path below the input prefix; ``Ignored`` when it is no input of this function."""
    if not name.startswith(prefix):
        raise Ignored(f"{uri} is outside the input prefix {prefix!r}")
    if store.holds(uri):
        # Outputs written under the input prefix must never become inputs again.
        raise Ignored(f"{uri} is this function's own output")
    relative = PurePosixPath(name[len(prefix) :])
    if relative.suffix.lower() not in INPUT_SUFFIXES:
        raise Ignored(f"{uri} is not a {', '.join(INPUT_SUFFIXES[:-1])} or {INPUT_SUFFIXES[-1]} file")
    return relative


def _read_request(bucket: str, name: str, size: Any, max_chars: int) -> EventRequest:
    if _size(size) > max_chars * BYTES_PER_CHAR:
        raise bad_field("input", f"{size} bytes cannot fit the text limit")
    inputs = input_store(bucket)
    if inputs.stat(name) is None:
        raise Ignored(f"gs://{bucket}/{name} no longer exists")
    return _request_in(inputs.read(name), PurePosixPath(name).suffix.lower())


def _size(size: Any) -> int:
    """The object's size as GCS reports it (a decimal string; absent counts as 0), or a 400."""
    if size is None:
        return 0
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    if isinstance(size, str) and _DECIMAL.fullmatch(size):
        return int(size)
    raise bad_field("size", f"{str(size)[:40]!r} is not a size in bytes")


def _request_in(content: bytes, suffix: str) -> EventRequest:
    """A .txt file's text, an .ssml file's markup, or a .json file's request."""
    text = decode_text(content)
    if suffix == ".txt":
        return EventRequest(text=text)
    if suffix == ".ssml":
        return EventRequest(ssml=text)
    try:
        body = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"is not JSON: {_why(exc)}", "input") from None
    return parse(EventRequest, body)


PARSERS: dict[str, Parser] = {PUBSUB_PUBLISHED: pubsub_message, STORAGE_FINALIZED: dropped_file}
