"""Where a job lives in storage, and its record: everything ``GET /jobs/<id>`` and the part that
finishes last need, so that no instance keeps any state of its own.

    jobs/<id>/job.json          the record (write-once): parts, their audio, format, where the result goes
    jobs/<id>/parts/<n>.json    one manifest per finished part (write-once): progress is their count
    jobs/<id>/publishing/<n>    claim n to publish the parts, before publishing (``function.jobs.claim``)
    jobs/<id>/published         written once every part is published (a re-sent job publishes nothing)
    jobs/<id>/notified          written once the results notification is out
    jobs/<id>/audio.<ext>       the audio, unless the job came from an event that names its output
    jobs/<id>/manifest.json     the final manifest, unless the event that made the job names one;
                                also where it goes when that name holds another job's (the job
                                always has a manifest of its own: ``Job.final``)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from function.errors import ApiError
from function.marks import marks_name
from function.namespaces import SERVICE_PREFIX
from function.schema import SynthesizeRequest
from function.storage import ObjectStore, StoredObject
from function.subtitles import subtitles_name

# The service's own namespace (function.namespaces): no caller-named output can fall into it.
JOBS = SERVICE_PREFIX
# Job ids are content addresses (hex); anything else cannot name a job.
JOB_ID = re.compile(r"[0-9a-f]{32}")
JSON = "application/json"


def finished_at() -> str:
    """The time a manifest records its end at (UTC, milliseconds)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def job_dir(job_id: str) -> str:
    return f"{JOBS}{job_id}/"


def record_name(job_id: str) -> str:
    return f"{job_dir(job_id)}job.json"


def parts_prefix(job_id: str) -> str:
    return f"{job_dir(job_id)}parts/"


def part_name(job_id: str, part: int) -> str:
    return f"{parts_prefix(job_id)}{part:06d}.json"


def manifest_name(job_id: str) -> str:
    """The final manifest of a job that no event named one for."""
    return f"{job_dir(job_id)}manifest.json"


def published_marker(job_id: str) -> str:
    return f"{job_dir(job_id)}published"


def notified_marker(job_id: str) -> str:
    return f"{job_dir(job_id)}notified"


@dataclass(frozen=True)
class Job:
    """The job record (``job.json``)."""

    id: str
    chars: int
    format: str
    engine: str
    model_version: str
    voice: str
    language: str
    speed: float
    sample_rate: int  # of the parts' PCM
    pause_ms: int  # between parts, as between sentences
    part_objects: tuple[str, ...]  # each part's audio (PCM), by content address
    output: str  # the audio's object name
    manifest: str  # the final manifest's object name
    origin: dict[str, Any]  # what submitted it: the HTTP request, or the event and its input
    # The key id of the caller that submitted it, where keys are configured (None: no key, or an
    # event); records written before there was an owner have none.
    owner: str | None = None
    # Whose cache its parts' audio is in (``function.pipeline.cache_scope``): "" shared.
    scope: str = ""
    # Speech marks and subtitles for the whole document (``function.jobs.marked``), and what to add
    # to a part's character offsets for the job's text: where the part begins in it (an SSML
    # part's: where its verbatim markup begins, less the re-opened tags before it).
    marks: tuple[str, ...] = ()
    subtitles: str | None = None
    part_starts: tuple[int, ...] = ()
    # Samples of silence before each part (an SSML job's breaks between parts); empty: pause_ms
    # between every two parts.
    pauses: tuple[int, ...] = ()
    # Each part's request, hashed (``request_digest``): a part message is checked against it.
    # Records written before it existed have none (their parts are checked by their audio address).
    part_digests: tuple[str, ...] = ()

    @property
    def parts(self) -> int:
        return len(self.part_objects)

    def pause_before(self, part: int) -> int:
        """Samples of silence between part ``part - 1`` and part ``part`` (none before the first)."""
        if self.pauses:
            return self.pauses[part]
        return round(self.pause_ms / 1000 * self.sample_rate) if part else 0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2).encode()

    @classmethod
    def read(cls, store: ObjectStore, job_id: str) -> Job | None:
        if store.stat(record_name(job_id)) is None:
            return None
        record = json.loads(store.read(record_name(job_id)))
        listed = ("part_objects", "marks", "part_starts", "pauses", "part_digests")
        tuples = {name: tuple(record.get(name, ())) for name in listed}
        return cls(**record | tuples)

    @classmethod
    def find(cls, store: ObjectStore, job_id: str, caller: str | None = None) -> Job:
        """The job, or a 404 that says so. With keys configured (``caller`` is a key id) only the
        key that submitted the job finds it: another key's job is as absent as an unknown one."""
        job = cls.read(store, job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None or (caller is not None and job.owner != caller):
            raise ApiError(404, "job_not_found", f"no job {job_id!r}", field="job_id")
        return job

    @property
    def manifests(self) -> tuple[str, ...]:
        """Where the final manifest may be: the name it was given, then the job's own (a caller's
        name may hold another job's manifest; this job's is never reported as its own)."""
        return tuple(dict.fromkeys((self.manifest, manifest_name(self.id))))

    def final(self, store: ObjectStore) -> StoredObject | None:
        """The job's final manifest, once it is written."""
        for name in self.manifests:
            found = store.stat(name)
            if found is not None and found.metadata.get("job_id") == self.id:
                return found
        return None

    def summary(self, store: ObjectStore) -> dict[str, Any]:
        """What a caller needs to find the results."""
        return {
            "job_id": self.id,
            "parts": self.parts,
            "chars": self.chars,
            "format": self.format,
            "engine": self.engine,
            "voice": self.voice,
            "uri": store.uri(self.output),
            "manifest": store.uri(self.manifest),
        } | self._marks_uris(store)

    def _marks_uris(self, store: ObjectStore) -> dict[str, str]:
        """Where the document's marks and subtitles will be, when the job asked for them."""
        uris = {"marks_uri": store.uri(marks_name(self.output))} if self.marks or self.subtitles else {}
        if self.subtitles is not None:
            uris["subtitles_uri"] = store.uri(subtitles_name(self.output, self.subtitles))
        return uris


def request_digest(request: SynthesizeRequest) -> str:
    """A part's request, hashed: every field, as validated (so a message's request hashes alike)."""
    fields = json.dumps(request.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(fields.encode()).hexdigest()
