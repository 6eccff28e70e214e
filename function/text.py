"""Text handling: the canonical form used for cache keys, and sentence splitting for synthesis."""

from __future__ import annotations

import re
import unicodedata

# Sentence ends: Latin terminators followed by space, or CJK terminators (no space needed).
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+|(?<=[。！？；])[」』”’）]*\s*")
_CLAUSE_END = re.compile(r"(?<=[,;:，、；：])\s*")
# Abbreviations that end in a period but rarely end a sentence.
_ABBREVIATIONS = frozenset(
    {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "etc.", "e.g.", "i.e.", "no."}
)


def normalize_text(text: str) -> str:
    """NFC, no control characters, runs of blanks folded, blank lines dropped.

    Two requests that differ only in these ways are the same request: they share one cached object.
    """
    text = unicodedata.normalize("NFC", text)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences of normalised text, each at most ``max_chars`` (long ones are cut at clauses, then words)."""
    sentences: list[str] = []
    for line in text.split("\n"):
        pending = ""
        for piece in _SENTENCE_END.split(line):
            if not piece.strip():
                continue
            pending = f"{pending} {piece}".strip() if pending else piece.strip()
            if pending.split(" ")[-1].lower() in _ABBREVIATIONS:
                continue
            sentences.extend(_cap_length(pending, max_chars))
            pending = ""
        if pending:
            sentences.extend(_cap_length(pending, max_chars))
    return sentences


def _cap_length(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    parts: list[str] = []
    current = ""
    for clause in _CLAUSE_END.split(sentence):
        for word in _words_within(clause, max_chars):
            joiner = " " if current and not _is_cjk(word[:1]) else ""
            if current and len(current) + len(joiner) + len(word) > max_chars:
                parts.append(current)
                current = word
            else:
                current = f"{current}{joiner}{word}"
    if current:
        parts.append(current)
    return parts


def _words_within(clause: str, max_chars: int) -> list[str]:
    """A clause as words no longer than ``max_chars`` (CJK text has no spaces: cut it by length)."""
    words: list[str] = []
    for word in clause.split(" "):
        words.extend(word[i : i + max_chars] for i in range(0, len(word), max_chars))
    return [w for w in words if w]


def _is_cjk(char: str) -> bool:
    return bool(char) and unicodedata.east_asian_width(char) in ("W", "F")
