"""Joining a job's parts into its audio, once, whoever finishes last.

Every write is create-if-absent (GCS ``if_generation_match=0``), so two finishers racing, or a
redelivered last part, leave one audio object and one manifest. Per format:

- ``pcm``: raw samples concatenate, so GCS ``compose`` joins the parts (and the pause between
  them) without the audio passing through an instance;
- ``wav``: compose too, in two steps: the parts into one PCM body, then a 44-byte header (written
  once the body's size is known) and the body (a WAV header holds the data size, so parts'
  own WAV files would not concatenate);
- ``flac``, ``mp3``, ``ogg``, ``opus``: decode and encode. Their files do not concatenate into one
  valid file (FLAC's STREAMINFO and MP3's Xing/LAME frame give the first part's length and
  sample count; Ogg pages carry per-stream serials and granule positions): each part's PCM is read
  in turn and written to one encoder, so only the encoded result is held in memory.
"""

from __future__ import annotations

import json
import math
import struct
import time
from typing import Any

import numpy as np

from function import audio
from function.audio import FORMATS
from function.errors import ApiError
from function.jobs.layout import JOBS, JSON, Job, finished_at, job_dir, notified_marker
from function.jobs.marked import store_marks
from function.jobs.publish import Message, Publisher
from function.storage import ObjectStore, StorageError, StoredObject

# RIFF sizes are 32-bit.
WAV_MAX_DATA_BYTES = 0xFFFFFFFF - 36
PCM_BYTES = 2  # 16-bit mono


def assemble(job: Job, store: ObjectStore, publisher: Publisher | None, deadline: float) -> StoredObject:
    """The job's audio and "succeeded" manifest (or a "failed" one when its output name holds other
    audio, or when encoding cannot finish by ``deadline``, a ``time.monotonic()`` reading inside
    the delivery's timeout); then the notification. Returns the manifest."""
    fmt = FORMATS[job.format]
    sources = _with_pauses(job, store)
    metadata = {"job_id": job.id, "sample_rate": str(audio.output_rate(fmt, job.sample_rate))}
    try:
        if fmt.name == "pcm":
            stored, _ = store.compose(job.output, sources, fmt.content_type, metadata, _scratch(job))
            frames = stored.size // PCM_BYTES
        elif fmt.name == "wav":
            stored, frames = _compose_wav(job, store, sources, metadata)
        else:
            data, frames = _encode(store, sources, job.sample_rate, fmt, deadline)
            stored, _ = store.create(job.output, data, fmt.content_type, metadata)
        if stored.metadata.get("job_id") != job.id:
            raise ApiError(409, "output_exists", f"{stored.uri} already holds audio for a different request")
    except ApiError as exc:
        if not exc.permanent:
            raise
        return fail(job, store, publisher, exc, part=None)
    record = {
        "status": "succeeded",
        **job.summary(store),
        "sample_rate": int(metadata["sample_rate"]),
        "duration_s": round(frames / job.sample_rate, 3),
    }
    if job.marks or job.subtitles:
        record |= store_marks(job, store)
    return finish(job, store, publisher, record)


def fail(
    job: Job, store: ObjectStore, publisher: Publisher | None, error: ApiError, part: int | None
) -> StoredObject:
    """The job's "failed" manifest, naming the part that failed (None: the assembly)."""
    failure = error.record() | {"part": part}
    return finish(job, store, publisher, {"status": "failed", **job.summary(store), "error": failure})


def finish(job: Job, store: ObjectStore, publisher: Publisher | None, record: dict[str, Any]) -> StoredObject:
    """Write the final manifest once (the first finisher's stands), then notify once it is out.
    When the name it was given holds another job's manifest (an event's ``output`` used twice),
    it goes under the job's own name: the job's outcome and notification are always its own."""
    record["finished_at"] = finished_at()
    # A job an event made writes the event's manifest: a redelivered event finds it as its own.
    source = job.origin.get("source")
    event_id = source.get("id", "") if isinstance(source, dict) else ""
    metadata = {"job_id": job.id, "status": record["status"], "event_id": event_id}
    for name in job.manifests:
        record["manifest"] = store.uri(name)
        data = json.dumps(record, ensure_ascii=False, indent=2).encode()
        manifest, _ = store.create(name, data, JSON, metadata)
        if manifest.metadata.get("job_id") == job.id:
            notify(job, store, publisher, manifest)
            return manifest
    # The job's own name is under jobs/, which no caller can name: only a bucket written by hand
    # (or by a version before namespaces were reserved) gets here. A retry, then the dead letters.
    raise StorageError(f"{manifest.uri} holds another job's manifest")


def notify(job: Job, store: ObjectStore, publisher: Publisher | None, manifest: StoredObject) -> None:
    """Publish {job id, status, uri} unless a finisher already did (at least once: two finishers in
    the same instant may both publish; subscribers key on the job id)."""
    if publisher is None or store.stat(notified_marker(job.id)) is not None:
        return
    status = manifest.metadata.get("status", "")
    uri = store.uri(job.output) if status == "succeeded" else None
    publisher.result(Message({"job_id": job.id, "status": status, "uri": uri, "manifest": manifest.uri}))
    store.create(notified_marker(job.id), b"", "text/plain", {"job_id": job.id})


def _with_pauses(job: Job, store: ObjectStore) -> list[str]:
    """The parts' objects with the pause object before each that has one."""
    silences: dict[int, str] = {}
    sources: list[str] = []
    for n, name in enumerate(job.part_objects):
        samples = job.pause_before(n)
        if samples:
            if samples not in silences:
                silences[samples] = _silence(job, store, samples)
            sources.append(silences[samples])
        sources.append(name)
    return sources


def _silence(job: Job, store: ObjectStore, samples: int) -> str:
    """An object of ``samples`` samples of silence. Shared by every job at this rate and length.
    Before namespaces were reserved a caller could write its name (issue 24), so it is used only
    when it holds the silence; else the job's own."""
    shared = f"{JOBS}pause-{job.sample_rate}-{samples * 1000 / job.sample_rate:.10g}ms.pcm"
    silence = bytes(samples * PCM_BYTES)
    pause = next(
        (name for name in (shared, f"{job_dir(job.id)}pause-{samples}.pcm") if _holds(store, name, silence)),
        None,
    )
    if pause is None:
        raise ApiError(409, "output_exists", f"{store.uri(shared)} and the job's own pause hold other data")
    return pause


def _holds(store: ObjectStore, name: str, data: bytes) -> bool:
    """Write the service's object ``name`` if absent; whether it holds ``data`` (it is read back
    when it was there before: another writer's object is never used on trust)."""
    stored, created = store.create(name, data, "application/octet-stream", {})
    return created or (stored.size == len(data) and store.read(name) == data)


def _compose_wav(
    job: Job, store: ObjectStore, sources: list[str], metadata: dict[str, str]
) -> tuple[StoredObject, int]:
    body, _ = store.compose(
        f"{job_dir(job.id)}body.pcm", sources, "audio/pcm", {"job_id": job.id}, _scratch(job)
    )
    if body.metadata.get("job_id") != job.id:  # as the header: written by this job, or not used
        raise ApiError(409, "output_exists", f"{body.uri} holds another job's audio")
    if body.size > WAV_MAX_DATA_BYTES:
        raise ApiError(
            400, "audio_too_long", f"{body.size} bytes of audio exceed WAV's 4 GiB; use flac or pcm", "format"
        )
    header = f"{job_dir(job.id)}wav-header"
    if not _holds(store, header, wav_header(body.size, job.sample_rate)):
        raise ApiError(409, "output_exists", f"{store.uri(header)} holds another header")
    stored, _ = store.compose(job.output, [header, body.name], FORMATS["wav"].content_type, metadata)
    return stored, body.size // PCM_BYTES


def _scratch(job: Job) -> str:
    """Where a store's intermediate objects go (GCS composes 32 sources a call)."""
    return f"{job_dir(job.id)}compose/"


def wav_header(data_bytes: int, sample_rate: int) -> bytes:
    """The canonical 44-byte header of 16-bit mono PCM WAV with ``data_bytes`` of samples."""
    byte_rate = sample_rate * PCM_BYTES
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        1,  # mono
        sample_rate,
        byte_rate,
        PCM_BYTES,
        16,
        b"data",
        data_bytes,
    )


def _encode(
    store: ObjectStore, sources: list[str], rate: int, fmt: audio.AudioFormat, deadline: float = math.inf
) -> tuple[bytes, int]:
    """Each source's PCM in turn through one encoder (the one every response uses); the file and
    the frames at ``rate``. Encoding runs in the delivery that finishes the job: past ``deadline``
    it stops with a permanent error, so the job ends "failed" instead of being cut off by the
    platform, redelivered and cut off again until it is dead-lettered while it says "running"."""
    encoder = audio.Encoder(rate, fmt)
    frames = 0
    for done, name in enumerate(sources):
        if time.monotonic() > deadline:
            raise ApiError(
                400,
                "audio_too_long",
                f"encoding {frames / rate:.0f} s of the job's audio to {fmt.name} used this event's time "
                f"({done} of {len(sources)} pieces encoded); choose wav or pcm (joined without encoding), "
                "or send a shorter document (docs/jobs.md, 'Assembly, per format')",
                "format",
            )
        samples = np.frombuffer(store.read(name), "<i2").astype(np.float32) / 32768
        frames += len(samples)
        encoder.write(samples)
    encoder.close()
    return encoder.file, frames
