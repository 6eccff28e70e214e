"""A job's speech marks and subtitles: its parts' marks joined into the whole document's.

Each part was synthesized with marks (stored beside its audio, ``function.marks``). The job's
audio is the parts with the pause between them (``function.jobs.assemble``; an SSML job's breaks
between parts), so each part's marks move by the samples before it (its predecessors' and the
pauses), and their character offsets by where the part begins in the job's text (or its markup).
Written write-once beside the job's audio.
"""

from __future__ import annotations

from typing import Any

from function import marks, subtitles
from function.jobs.layout import Job
from function.storage import ObjectStore, StorageError


def joined(job: Job, store: ObjectStore) -> dict[str, Any]:
    """The job's marks object, from its parts' (each found beside the part's audio)."""
    samples, moved = 0, []
    for number, name in enumerate(job.part_objects):
        samples += job.pause_before(number)
        part = marks.read_marks(store, name)
        if part is None:  # its part stored the audio first: a retry finds both
            raise StorageError(f"{store.uri(name)} has no marks beside it yet")
        chars = job.part_starts[number]
        for mark in part["marks"]:
            start, end = mark["start_sample"] + samples, mark["end_sample"] + samples
            moved.append(
                mark
                | {
                    "start_s": round(start / job.sample_rate, 6),
                    "end_s": round(end / job.sample_rate, 6),
                    "start_sample": start,
                    "end_sample": end,
                    "start": mark["start"] + chars,
                    "end": mark["end"] + chars,
                }
            )
        samples += part["samples"]
    return {
        "format": marks.MARKS_FORMAT,
        "engine": job.engine,
        "sample_rate": job.sample_rate,
        "samples": samples,
        "duration_s": round(samples / job.sample_rate, 6),
        "marks": moved,
    }


def store_marks(job: Job, store: ObjectStore) -> dict[str, str]:
    """Write the job's marks (and subtitles, if asked) beside its audio; their URIs."""
    doc = joined(job, store)
    metadata = {"job_id": job.id}
    uris = {"marks_uri": marks.write_marks(store, job.output, doc, metadata).uri}
    if job.subtitles is not None:
        uris["subtitles_uri"] = subtitles.write(store, job.output, doc, job.subtitles, metadata).uri
    return uris
