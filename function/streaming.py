"""Streamed synthesis: the audio goes out as the engine speaks each piece (a sentence, or the
engine's own chunk), as raw audio bytes or as OpenAI's server-sent events (docs/streaming.md).

Everything that can fail before the first byte happens in ``open_stream``, while the answer can
still be an HTTP error: the cache lookup, the model load and the first piece's synthesis. After
that the response is committed: a failure ends the stream (an ``error`` event for SSE; raw audio is
cut off without its last chunk, so the client sees a truncated transfer, never a complete one).
Storage stays write-once: the complete file is stored after the last piece and before the last
bytes go out; a client that leaves stops the synthesis before the next piece and nothing is stored.
A cache hit streams the stored object. An engine whose streamed audio differs from its whole
audio (CosyVoice: upstream's stream mode) has it stored under its own key; a stream sends the whole
audio when that is stored, else its own.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import Any

import numpy as np

from function import audio, frame, marks, pipeline, subtitles
from function.config import Settings
from function.pipeline import Encoded, Plan, Result
from function.schema import StreamFormat
from function.storage import ObjectStore, StoredObject

# A stored object (a cache hit) goes out in pieces this size.
STORED_CHUNK_BYTES = 64 * 1024
SSE_CONTENT_TYPE = "text/event-stream"

# How a stream ended, for its log line: the fields, and a failure after the first byte.
StreamEnd = Callable[[Mapping[str, Any], frame.Failure | None], None]
# What a stream's source yields: audio bytes, or a speech mark (an SSE event; raw audio skips it).
Sent = bytes | dict[str, Any]


class AudioStream:
    """A streamed response body (``web.StreamBody``): the WSGI server iterates it and closes it,
    and it reports how it ended (completed, failed, or the client left) exactly once."""

    def __init__(self, plan: Plan, mode: StreamFormat) -> None:
        self.plan = plan
        self.mode = mode
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.result: Result | None = None  # once the audio is stored (or was: a cache hit)
        self.disconnected = False
        self.chunks = 0
        self.ttfb_ms: float | None = None
        self.failure: frame.Failure | None = None
        self.content_type = SSE_CONTENT_TYPE if mode == "sse" else plan.format.content_type
        self.headers: dict[str, str] = {}
        self._source: Iterator[Sent] = iter(())
        self._reference = ""
        self._end: StreamEnd | None = None
        self._over = False
        self._body = self._run()

    def __iter__(self) -> Iterator[bytes]:
        return self._body

    def close(self) -> None:
        """Called by the WSGI server when the response is over, or the client's socket failed."""
        self._body.close()
        if not self._over:  # closed before its end: the client went away
            self.disconnected = True
            self._finish()

    def begin(self, source: Iterator[Sent], headers: dict[str, str]) -> None:
        """What the stream sends, and the response headers that say what it is."""
        self._source, self.headers = source, headers

    def when_over(self, reference: str, end: StreamEnd) -> None:
        """Call ``end`` once the stream is over; ``reference`` names the request in a 500's message."""
        self._reference, self._end = reference, end

    def log_fields(self) -> dict[str, Any]:
        if self.result is not None:
            what = self.result.log_fields()
        else:  # nothing stored: what was asked for, and the time spent on it
            cold = "load_ms" in self.timings
            what = (
                self.plan.log_fields()
                | {"cached": False, "cold_start": cold}
                | pipeline.rounded(self.timings)
            )
        stream = {
            "stream": self.mode,
            "ttfb_ms": self.ttfb_ms,
            "chunks": self.chunks,
            "disconnected": self.disconnected,
        }
        failed = self.failure.error.log_fields() if self.failure else {}
        return what | stream | failed

    def _run(self) -> Iterator[bytes]:
        try:
            for data in self._source:
                if isinstance(data, dict):  # a speech mark: an event of its own, SSE only
                    if self.mode == "sse":
                        yield _event({"type": "speech.mark", "mark": data})
                    continue
                if self.ttfb_ms is None:
                    self.ttfb_ms = round(pipeline.elapsed_ms(self.started), 1)
                self.chunks += 1
                yield _delta(data) if self.mode == "sse" else data
        except GeneratorExit:  # the server could not write: the client is gone
            self.disconnected = True
            raise
        except Exception as exc:
            self.failure = frame.failure(exc, self._reference)
            self._finish()
            if self.mode != "sse":
                raise  # the server drops the connection before the last chunk: a truncated transfer
            yield _event({"type": "error", **self.failure.error.body()})
            return
        if self.mode == "sse" and self.result is not None:
            yield _event({"type": "speech.audio.done", "usage": _usage(self.plan)})
        self._finish()

    def _finish(self) -> None:
        if self._over:
            return
        self._over = True
        if self._end is not None:
            self._end(self.log_fields(), self.failure)


def open_stream(
    plan: Plan,
    store: ObjectStore,
    settings: Settings,
    mode: StreamFormat,
    client_gone: Callable[[], bool],
) -> AudioStream:
    """A stream of ``plan``'s audio, its first bytes ready: from storage when it exists, else
    synthesized piece by piece (``client_gone`` is asked before each chunk)."""
    stream = AudioStream(plan, mode)
    stream.plan, existing = _find(plan, store, stream.timings)
    plan = stream.plan
    if existing is not None:
        if plan.marked:  # the stored marks, or (audio stored without them) marks made for it
            stream.result = pipeline.execute(plan, store, settings, want_audio=True)
        else:
            stream.result = pipeline.from_store(plan, existing, store, stream.timings, want_audio=True)
        result = stream.result
        sent = marks.shown(result.marks.doc["marks"], plan.marks) if result.marks is not None else []
        stream.begin(_chain(*sent, _stored(result.audio or b"")), result.headers())
        return stream
    pipeline.prepare(plan.engine, stream.timings)
    source = _synthesized(stream, store, settings, client_gone)
    first = next(source, b"")  # the first chunk, synthesized before the response starts
    rate = audio.output_rate(plan.format, plan.engine.sample_rate)
    uri = store.uri(plan.object_name)
    headers = {"X-Audio-Uri": uri, "X-Audio-Cached": "false", "X-Audio-Sample-Rate": str(rate)}
    headers |= plan.headers("load_ms" in stream.timings)
    if plan.marked:  # where they will be once the audio is stored
        headers["X-Marks-Uri"] = store.uri(marks.marks_name(plan.object_name))
        if plan.subtitles is not None:
            headers["X-Subtitles-Uri"] = store.uri(subtitles.subtitles_name(plan.object_name, plan.subtitles))
    stream.begin(_chain(first, source), headers)
    return stream


def _find(plan: Plan, store: ObjectStore, timings: dict[str, float]) -> tuple[Plan, StoredObject | None]:
    """What a stream sends: the whole audio when it is stored (streamed or not, it is the same
    request's); else the engine's streamed audio, under its own key when it differs (then the plan
    is that key's: a miss is synthesized and stored as it)."""
    existing = pipeline.lookup(store, plan.object_name, timings)
    own = pipeline.streamed(plan) if existing is None else None
    if own is None:
        return plan, existing
    return own, pipeline.lookup(store, own.object_name, timings)


def _synthesized(
    stream: AudioStream, store: ObjectStore, settings: Settings, client_gone: Callable[[], bool]
) -> Iterator[Sent]:
    """Encode and yield each chunk as the engine speaks it (a piece, a pause, or part of a piece),
    and the marks of each piece once it is spoken, when the plan asks for them; store the complete
    file (and its marks) at the end."""
    plan = stream.plan
    if not plan.marked:
        tail = yield from _spoken(stream, store, settings, client_gone, None)
    else:
        recorder, marker = marks.Recorder(), marks.Marker(plan.source, plan.engine.sample_rate)
        with plan.engine.listening(recorder):
            tail = yield from _spoken(stream, store, settings, client_gone, (recorder, marker))
        if stream.result is not None:  # stored before the last bytes go out, as the audio is
            doc = marker.document(plan.engine.name, recorder.samples)
            stream.result = pipeline.with_marks(stream.result, doc, store)
    if tail:
        yield tail


def _spoken(
    stream: AudioStream,
    store: ObjectStore,
    settings: Settings,
    client_gone: Callable[[], bool],
    marking: tuple[marks.Recorder, marks.Marker] | None,
) -> Generator[Sent, None, bytes]:
    """``_synthesized``'s work; returns the encoder's last bytes, once the audio is stored."""
    plan, timings = stream.plan, stream.timings
    engine = plan.engine
    encoder = audio.Encoder(engine.sample_rate, plan.format)
    pieces = pipeline.spoken_chunks(plan, settings.sentence_pause_ms / 1000, streamed=True)
    chunks: list[np.ndarray] = []
    while True:
        if chunks and client_gone():
            stream.disconnected = True  # stop before the next chunk; nothing is stored
            return b""
        started = time.perf_counter()
        chunk = next(pieces, None)
        _add(timings, "synthesis_ms", started)
        if marking is not None:  # the pieces this chunk (or the end) completed
            recorder, marker = marking
            yield from marks.shown(marker.add(recorder.flush(final=chunk is None)), plan.marks)
        if chunk is None:
            break
        chunks.append(chunk)
        started = time.perf_counter()
        data = encoder.write(chunk)
        _add(timings, "encode_ms", started)
        if data:
            yield data
    samples = pipeline.audible(plan, chunks)
    started = time.perf_counter()
    tail = encoder.close()
    _add(timings, "encode_ms", started)
    encoded = Encoded(encoder.file, encoder.rate, len(samples))
    stream.result = pipeline.save(plan, store, plan.object_name, encoded, timings, want_audio=False)
    return tail


def _stored(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), STORED_CHUNK_BYTES):
        yield data[start : start + STORED_CHUNK_BYTES]


def _chain(*sent: Sent | Iterator[Sent]) -> Iterator[Sent]:
    """What a stream sends: single items (empty audio left out) and iterators, in order."""
    for item in sent:
        if isinstance(item, bytes | dict):
            if item:
                yield item
        else:
            yield from item


def _delta(data: bytes) -> bytes:
    return _event({"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")})


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _usage(plan: Plan) -> dict[str, int]:
    # OpenAI counts tokens; there are none here, so the input is counted in characters.
    return {"input_tokens": len(plan.text), "output_tokens": 0, "total_tokens": len(plan.text)}


def _add(timings: dict[str, float], name: str, started: float) -> None:
    timings[name] = timings.get(name, 0.0) + pipeline.elapsed_ms(started)
