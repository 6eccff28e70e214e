"""``POST /jobs``: a document as text, or as an object in the input bucket."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field

from function.config import Settings
from function.errors import ApiError, bad_field
from function.schema import SynthesizeRequest
from function.storage import ObjectStore, open_store

# UTF-8 needs at most 4 bytes a character: a larger input cannot fit the character limit.
BYTES_PER_CHAR = 4


class JobRequest(SynthesizeRequest):
    """The fields of ``POST /synthesize``, with the text (or SSML) given inline or as ``input``."""

    text: str | None = None  # type: ignore[assignment]  # optional here: or ``input``
    input: str | None = Field(
        default=None, description='gs://<input bucket>/<object>: UTF-8 text (SSML with text_type "ssml")'
    )


def document_text(request: JobRequest, settings: Settings) -> str:
    """The document the request names: its ``text`` or ``ssml``, or the text of its ``input``
    object (SSML when ``text_type`` is "ssml")."""
    if request.ssml is not None:
        if request.input is not None:
            raise bad_field("ssml", "give the document as ssml or as input (a gs:// object), not both")
        request.markup()  # a 400 when text holds a document too
        return request.ssml
    if (request.text is None) == (request.input is None):
        raise bad_field("text", "give the document as text or as input (a gs:// object), exactly one")
    if request.text is not None:
        return request.text
    assert request.input is not None
    return read_input(request.input, settings)


def inline_document(request: SynthesizeRequest) -> str:
    """A synthesis request's document as ``jobs.submit`` takes it: its SSML, or its text."""
    return request.ssml if request.ssml is not None else request.text


def read_input(uri: str, settings: Settings) -> str:
    """The UTF-8 text of an object in the input bucket (the only bucket read, as for dropped files)."""
    bucket, _, name = uri.removeprefix("gs://").partition("/")
    if not uri.startswith("gs://") or not name:
        raise bad_field("input", f"{uri[:200]!r} is not a gs://bucket/object URI")
    if bucket != settings.input_bucket:
        raise bad_field("input", f"must be in the input bucket {settings.input_bucket!r}, not {bucket!r}")
    inputs = input_store(bucket)
    stored = inputs.stat(name)
    if stored is None:
        raise bad_field("input", f"{uri} does not exist")
    limit = settings.job_max_chars * BYTES_PER_CHAR
    if stored.size > limit:
        raise ApiError(413, "input_too_large", f"{stored.size} bytes exceed the limit of {limit}", "input")
    return decode_text(inputs.read(name))


def decode_text(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "undecodable_input", f"is not UTF-8 text: {exc}", "input") from None


@lru_cache(maxsize=8)
def input_store(bucket: str) -> ObjectStore:
    return open_store(f"gs://{bucket}")  # one client per bucket for the life of the instance
