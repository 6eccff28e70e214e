"""Speech marks: when each sentence (and, where the engine knows, each word) is said, and which
characters of the caller's text it came from.

A ``Recorder`` listens to the engine while it speaks (``Engine.listening``): it counts the samples
of every chunk the engine yields, so a sentence's start and end are exact to the sample of the
audio stored, pauses included. A sentence is a piece the engine speaks at once (``Engine.pieces``:
a sentence for hibari and Kokoro, cut further only past the model's length limit; CosyVoice's own
pieces of up to ~80 characters). Words come from the engine (Kokoro: its predicted phoneme
durations, ``function.engines.kokoro.timing``).

The engine speaks normalised text (blanks folded; numbers read out in Chinese text), so a piece's
characters are found in the caller's text by aligning the two (``difflib``): what was rewritten
maps to the whole rewritten span. A piece that carries its own offsets (``source_span``, set by a
front end that parsed markup) is used as is. Offsets count Unicode code points of the text as
sent (after the leading and trailing blanks the request schema strips).

The marks object (``<audio object>.marks.json``, write-once beside the audio) holds every mark the
engine could give; a response shows the kinds asked for.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from function.engines.base import Engine, TimedWord
from function.storage import ObjectStore, StoredObject

MARKS_FORMAT = 1
MARKS_SUFFIX = ".marks.json"
MARKS_CONTENT_TYPE = "application/json"
KINDS = ("sentence", "word")
# How far past a piece's expected end the caller's text is searched for it (rewrites such as
# numbers read out change lengths): its own length times this, plus the slack.
_WINDOW_FACTOR = 2
_WINDOW_SLACK = 64


@dataclass
class SpokenPiece:
    """One piece as spoken: its text, its first and one-past-last sample, its words (absolute samples)."""

    text: str
    start: int
    end: int
    words: list[TimedWord] = field(default_factory=list)


class Recorder:
    """An engine listener (``function.engines.base.Listener``) that keeps where each piece and
    word falls in the audio; ``flush`` hands out the pieces that are complete (a stream's marks)."""

    def __init__(self) -> None:
        self.samples = 0
        self.pieces: list[SpokenPiece] = []
        self._words: list[TimedWord] = []
        self._flushed = 0

    def piece(self, text: str) -> None:
        self.pieces.append(SpokenPiece(text, self.samples, self.samples))

    def words(self, words: list[TimedWord]) -> None:
        self._words = words

    def audio(self, samples: int) -> None:
        if self.pieces:
            current = self.pieces[-1]
            current.words.extend(
                TimedWord(w.text, self.samples + w.start, self.samples + w.end) for w in self._words
            )
            current.end = self.samples + samples
        self._words = []
        self.samples += samples

    def pause(self, samples: int) -> None:
        self.samples += samples

    def flush(self, final: bool = False) -> list[SpokenPiece]:
        """The pieces complete since the last flush: all but the one being spoken, or (``final``) all."""
        done = len(self.pieces) if final else max(0, len(self.pieces) - 1)
        pieces, self._flushed = self.pieces[self._flushed : done], max(self._flushed, done)
        return pieces


class Locator:
    """Finds each spoken piece, in order, in the caller's text (``source``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._cursor = 0

    def piece(self, text: str) -> tuple[int, int]:
        """The caller's characters ``text`` (the next piece spoken) came from."""
        span = getattr(text, "source_span", None)
        if span is not None:
            return int(span[0]), int(span[1])
        while self._cursor < len(self.source) and self.source[self._cursor].isspace():
            self._cursor += 1
        here = self.source[self._cursor : self._cursor + len(text)]
        if _blanks_alike(here) == _blanks_alike(text):  # verbatim (most pieces): no alignment
            start, self._cursor = self._cursor, self._cursor + len(text)
            return start, self._cursor
        window = self.source[self._cursor : self._cursor + len(text) * _WINDOW_FACTOR + _WINDOW_SLACK]
        blocks = difflib.SequenceMatcher(None, window, text, autojunk=False).get_matching_blocks()
        start = self._cursor + _source_start(blocks, 0)
        end = max(start, self._cursor + _source_end(blocks, len(text)))
        self._cursor = end
        return start, end

    def words(self, span: tuple[int, int], words: list[str]) -> list[tuple[int, int]]:
        """Each of ``words`` (as the front end wrote them, in order) in the caller's ``span``."""
        spoken, positions = "", []
        for word in words:
            spoken += " " if spoken else ""
            positions.append((len(spoken), len(spoken) + len(word)))
            spoken += word
        text = self.source[span[0] : span[1]].lower()
        matcher = difflib.SequenceMatcher(None, text, spoken.lower(), autojunk=False)
        blocks = matcher.get_matching_blocks()
        return [
            self._trimmed(span[0] + _source_start(blocks, a), span[0] + _source_end(blocks, b))
            for a, b in positions
        ]

    def _trimmed(self, start: int, end: int) -> tuple[int, int]:
        """A word's span without the punctuation and blanks an alignment may take in at its edges."""
        inner_start, inner_end = start, end
        while inner_start < inner_end and not self.source[inner_start].isalnum():
            inner_start += 1
        while inner_end > inner_start and not self.source[inner_end - 1].isalnum():
            inner_end -= 1
        return (inner_start, inner_end) if inner_end > inner_start else (start, end)


def _blanks_alike(text: str) -> str:
    """``text`` with line breaks and tabs as spaces (pieces and parts may join lines by either)."""
    return text.replace("\n", " ").replace("\t", " ")


def _source_start(blocks: list[Any], position: int) -> int:
    """Where spoken ``position`` begins in the source: inside a matched run, its match; in a
    rewritten stretch, where the source's rewritten stretch begins."""
    previous_end = 0
    for i, j, n in blocks:
        if j <= position < j + n:
            return i + position - j
        if position < j:
            break
        previous_end = i + n
    return previous_end


def _source_end(blocks: list[Any], position: int) -> int:
    """Where spoken ``position`` (one past a last character) ends in the source: inside a matched
    run, its match; in a rewritten stretch, where the source's rewritten stretch ends."""
    for i, j, n in blocks:
        if j < position <= j + n:
            return i + position - j
        if position <= j:
            return i
    return blocks[-1][0] if blocks else 0


class Marker:
    """Turns spoken pieces, in order, into marks (a stream's as they come) and the marks object."""

    def __init__(self, source: str, sample_rate: int) -> None:
        self._locator = Locator(source)
        self._source = source
        self._rate = sample_rate
        self.marks: list[dict[str, Any]] = []

    def add(self, pieces: list[SpokenPiece]) -> list[dict[str, Any]]:
        """The marks of ``pieces`` (the next ones spoken), in time order; kept for ``document``."""
        added: list[dict[str, Any]] = []
        for piece in pieces:
            span = self._locator.piece(piece.text)
            added.append(_mark("sentence", piece.start, piece.end, span, self._source, self._rate))
            words = [w for w in piece.words if any(c.isalnum() for c in w.text)]
            places = self._locator.words(span, [w.text for w in words])
            for word, where in zip(words, places, strict=True):
                added.append(_mark("word", word.start, word.end, where, self._source, self._rate))
        added.sort(key=lambda m: (m["start_sample"], KINDS.index(m["type"])))
        self.marks.extend(added)
        return added

    def document(self, engine: str, samples: int) -> dict[str, Any]:
        """The marks object: every mark added, what spoke them, and the audio's length."""
        return {
            "format": MARKS_FORMAT,
            "engine": engine,
            "sample_rate": self._rate,
            "samples": samples,
            "duration_s": round(samples / self._rate, 6),
            "marks": self.marks,
        }


def _mark(
    kind: str, start: int, end: int, span: tuple[int, int], source: str, sample_rate: int
) -> dict[str, Any]:
    return {
        "type": kind,
        "start_s": round(start / sample_rate, 6),
        "end_s": round(end / sample_rate, 6),
        "start_sample": start,
        "end_sample": end,
        "start": span[0],
        "end": span[1],
        "value": source[span[0] : span[1]],
    }


def shown(marks: list[dict[str, Any]], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    """The marks of the kinds asked for."""
    return [mark for mark in marks if mark["type"] in kinds]


def marks_name(audio_name: str) -> str:
    """Where an audio object's marks are stored: beside it."""
    return f"{audio_name}{MARKS_SUFFIX}"


def read_marks(store: ObjectStore, audio_name: str) -> dict[str, Any] | None:
    """The stored marks of ``audio_name``, None when none were stored (audio made without marks)."""
    if store.stat(marks_name(audio_name)) is None:
        return None
    return json.loads(store.read(marks_name(audio_name)))


def write_marks(
    store: ObjectStore, audio_name: str, doc: dict[str, Any], metadata: dict[str, str]
) -> StoredObject:
    """Store ``doc`` beside the audio, write-once (the same audio always has the same marks)."""
    data = json.dumps(doc, ensure_ascii=False).encode()
    stored, _ = store.create(marks_name(audio_name), data, MARKS_CONTENT_TYPE, metadata)
    return stored


@dataclass(frozen=True)
class Marked:
    """A result's marks: the marks object, where it is stored, and where its subtitles are (if asked)."""

    doc: dict[str, Any]
    uri: str
    subtitles_uri: str | None = None


def from_recorder(recorder: Recorder, source: str, engine: Engine) -> dict[str, Any]:
    """The marks object of what ``recorder`` heard ``engine`` say for the caller's text ``source``."""
    marker = Marker(source, engine.sample_rate)
    marker.add(recorder.pieces)
    return marker.document(engine.name, recorder.samples)
