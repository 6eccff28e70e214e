"""Who may write which names under the output prefix.

The namespaces are disjoint by construction, so nothing a caller names can land where the service
reads its own objects back (issue 24: a caller's ``output`` once overwrote the silence between a
job's parts, and squatted content addresses and future jobs' audio):

    <40 hex>[-<variant>].<ext>   content-addressed audio (``function.pipeline``), at the top level
    jobs/                        the job machinery (records, parts, markers, pauses, a job's audio
                                 and manifest: ``function.jobs``) and the manifests of events
                                 whose audio has no caller-chosen name (``function.events``)
    .meta/, .orphans/            a local store's metadata, and the bytes of writers that died
                                 before linking theirs (``function.storage``)
    anything else                caller-named outputs (an event's ``output``, a dropped file's
                                 path) and their manifests (``<output>.json``)

Only ``function.events.task.output_name`` turns a caller's string into an object name, and it
refuses every name ``reserved`` describes; HTTP requests name no objects at all.
"""

from __future__ import annotations

import re

# The service's own folder (its first segment), compared without case: a case-insensitive file
# system (a developer's local store) would merge "Jobs/" into it.
SERVICE_DIR = "jobs"
SERVICE_PREFIX = f"{SERVICE_DIR}/"
# Hex digits of the audio key that name a content-addressed object.
CONTENT_ADDRESS_CHARS = 40
_CONTENT_ADDRESS = re.compile(rf"[0-9a-fA-F]{{{CONTENT_ADDRESS_CHARS}}}")
RULE = (
    f"caller-named outputs may not start with '{SERVICE_PREFIX}' (the service's jobs and manifests), "
    f"begin with {CONTENT_ADDRESS_CHARS} hex digits at the top level (content addresses) or have a "
    "segment starting with '.'"
)


def content_address(audio_key: str) -> str:
    """The stem of a content-addressed object's name."""
    return audio_key[:CONTENT_ADDRESS_CHARS]


def reserved(name: str) -> bool:
    """Whether ``name`` lies in one of the service's own namespaces (a caller may not write it)."""
    segments = name.split("/")
    return (
        (len(segments) > 1 and segments[0].lower() == SERVICE_DIR)
        or any(segment.startswith(".") for segment in segments)
        or (len(segments) == 1 and _CONTENT_ADDRESS.match(name) is not None)
    )
