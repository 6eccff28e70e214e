"""Subtitles (WebVTT or SubRip) made from speech marks, stored beside the audio.

One cue per sentence mark; a sentence too long to read in one cue (``MAX_CUE_CHARS``: two lines
of 42 Latin characters, or of 16 Chinese ones) is cut into cues between its words where the
engine timed them (Kokoro: each cue then starts with its first word and ends with its last), else
at its clause marks, and a clause still too long between its blanks, the sentence's time shared by
characters (an estimate, within the sentence's exact bounds). Cue text is the caller's own.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from function.storage import ObjectStore, StoredObject

CONTENT_TYPES = {"vtt": "text/vtt; charset=utf-8", "srt": "application/x-subrip; charset=utf-8"}
MAX_CUE_CHARS = 84
MAX_CUE_CHARS_WIDE = 32
_CLAUSE = re.compile(r"(?<=[,;:，、；：—])\s*")


@dataclass(frozen=True)
class Cue:
    """A text and when it is said (seconds from the start of the audio)."""

    start_s: float
    end_s: float
    text: str


def cues(doc: dict[str, Any]) -> list[Cue]:
    """The cues of a marks object (``function.marks.document``), in time order."""
    marks = doc["marks"]
    words = [m for m in marks if m["type"] == "word"]
    out: list[Cue] = []
    for sentence in (m for m in marks if m["type"] == "sentence"):
        text = " ".join(sentence["value"].split())
        if not text:
            continue
        if len(text) <= _limit(text):
            out.append(Cue(sentence["start_s"], sentence["end_s"], text))
            continue
        inside = [w for w in words if sentence["start_sample"] <= w["start_sample"] < sentence["end_sample"]]
        out.extend(_by_words(sentence, inside) if inside else _by_clauses(sentence, text))
    return out


def _limit(text: str) -> int:
    wide = sum(unicodedata.east_asian_width(c) in ("W", "F") for c in text)
    return MAX_CUE_CHARS_WIDE if wide > len(text) / 2 else MAX_CUE_CHARS


def _by_words(sentence: dict[str, Any], words: list[dict[str, Any]]) -> list[Cue]:
    """Consecutive words whose span of the caller's text fits a cue, timed by the words."""
    source_start, value = sentence["start"], sentence["value"]
    groups: list[list[dict[str, Any]]] = [[]]
    for word in words:
        group = groups[-1]
        span = value[
            (group[0]["start"] if group else word["start"]) - source_start : word["end"] - source_start
        ]
        if group and len(" ".join(span.split())) > _limit(span):
            groups.append([word])
        else:
            group.append(word)
    out = []
    for number, group in enumerate(groups):
        first = source_start if number == 0 else group[0]["start"]
        last = source_start + len(value) if number == len(groups) - 1 else group[-1]["end"]
        start = sentence["start_s"] if number == 0 else group[0]["start_s"]
        end = sentence["end_s"] if number == len(groups) - 1 else group[-1]["end_s"]
        text = " ".join(value[first - source_start : last - source_start].split())
        out.append(Cue(start, end, text))
    return out


def _by_clauses(sentence: dict[str, Any], text: str) -> list[Cue]:
    """Clauses (then runs of blank-separated words) that fit a cue, the time shared by characters."""
    parts: list[str] = []
    for clause in (c for c in _CLAUSE.split(text) if c):
        for piece in _fitting(clause):
            if parts and len(parts[-1]) + 1 + len(piece) <= _limit(parts[-1] + piece):
                parts[-1] = f"{parts[-1]} {piece}" if piece[:1].isascii() else parts[-1] + piece
            else:
                parts.append(piece)
    start, duration = sentence["start_s"], sentence["end_s"] - sentence["start_s"]
    total, done, out = sum(len(p) for p in parts), 0, []
    for part in parts:
        begin = start + duration * done / total
        done += len(part)
        out.append(Cue(round(begin, 6), round(start + duration * done / total, 6), part))
    return out


def _fitting(clause: str) -> list[str]:
    """A clause cut between its blanks (unspaced text: by length) into runs that fit a cue."""
    limit = _limit(clause)
    if len(clause) <= limit:
        return [clause]
    words = (
        clause.split(" ") if " " in clause else [clause[i : i + limit] for i in range(0, len(clause), limit)]
    )
    runs = [""]
    for word in words:
        joined = f"{runs[-1]} {word}" if runs[-1] and " " in clause else runs[-1] + word
        if runs[-1] and len(joined) > limit:
            runs.append(word)
        else:
            runs[-1] = joined
    return runs


def render(doc: dict[str, Any], fmt: str) -> str:
    """The marks object's cues as a WebVTT (``vtt``) or SubRip (``srt``) file."""
    lines = ["WEBVTT", ""] if fmt == "vtt" else []
    for number, cue in enumerate(cues(doc), start=1):
        if fmt == "srt":
            lines.append(str(number))
        lines.append(
            f"{_timestamp(cue.start_s, fmt)} --> {_timestamp(max(cue.end_s, cue.start_s + 0.001), fmt)}"
        )
        lines.extend([cue.text, ""])
    return "\n".join(lines)


def _timestamp(seconds: float, fmt: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{'.' if fmt == 'vtt' else ','}{ms:03d}"


def subtitles_name(audio_name: str, fmt: str) -> str:
    return f"{audio_name}.{fmt}"


def write(
    store: ObjectStore, audio_name: str, doc: dict[str, Any], fmt: str, metadata: dict[str, str]
) -> StoredObject:
    """Store the subtitles beside the audio, write-once (the same marks always make the same file)."""
    data = render(doc, fmt).encode()
    stored, _ = store.create(subtitles_name(audio_name, fmt), data, CONTENT_TYPES[fmt], metadata)
    return stored
