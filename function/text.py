"""Text handling: the canonical form used for cache keys, and sentence splitting for synthesis."""

from __future__ import annotations

import re
import unicodedata

# A sentence end: Latin terminators before a blank, or CJK terminators (no blank needed), each with
# the closing quotes and brackets that follow them (they belong to the sentence they close).
_CLOSERS = "\"'”’)]}»」』）】》"
_CLOSING = f"[{re.escape(_CLOSERS)}]*"
_SENTENCE_END = re.compile(rf"[.!?…]+{_CLOSING}(?=\s)|[。！？；]+{_CLOSING}")
_CLAUSE_END = re.compile(r"(?<=[,;:，、；：])\s*")
# Words that end in a period but rarely end a sentence (compared lower-cased).
_ABBREVIATIONS = frozenset(
    [
        "mr.",
        "mrs.",
        "ms.",
        "dr.",
        "prof.",
        "st.",
        "sr.",
        "jr.",
        "vs.",
        "etc.",
        "no.",
        "vol.",
        "fig.",
        "approx.",
        "dept.",
        "mt.",
        "ft.",
        "est.",
        "jan.",
        "feb.",
        "mar.",
        "apr.",
        "jun.",
        "jul.",
        "aug.",
        "sep.",
        "sept.",
        "oct.",
        "nov.",
        "dec.",
    ]
)
# a.m., e.g., U.S., Ph.D.: letters with periods inside; and initials such as "J." in "J. K. Rowling".
_DOTTED = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]\.|[A-Z]\.")
_OPENERS = "\"'“‘([{«「『（【《"


def normalize_text(text: str) -> str:
    """NFC, no control characters, runs of blanks folded, blank lines dropped.

    Two requests that differ only in these ways are the same request: they share one cached object.
    """
    text = unicodedata.normalize("NFC", text)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def split_sentences(text: str, max_chars: int = 300) -> list[str]:
    """Sentences of normalised text, each at most ``max_chars`` (long ones are cut at clauses,
    and a clause longer than that at words)."""
    sentences: list[str] = []
    for line in text.split("\n"):
        for sentence in _line_sentences(line):
            sentences.extend(_cap_length(sentence, max_chars))
    return sentences


def _line_sentences(line: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(line):
        rest = line[match.end() :].lstrip()
        if not rest or (match.group()[0] in ".!?…" and _continues(line[start : match.end()], rest)):
            continue
        sentences.append(line[start : match.end()].strip())
        start = match.end()
    tail = line[start:].strip()
    return [s for s in (*sentences, tail) if s]


def _continues(sentence: str, rest: str) -> bool:
    """A Latin terminator that does not end the sentence: an abbreviation, or lower case after it."""
    if rest[0].islower():  # '"Stop!" he shouted.', 'at 10 a.m. on Monday'
        return True
    last = sentence.rsplit(" ", 1)[-1].lstrip(_OPENERS)
    return last.lower() in _ABBREVIATIONS or _DOTTED.fullmatch(last) is not None


def _cap_length(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    # Whole clauses where they fit; only a clause longer than max_chars is cut between words.
    clauses: list[str] = []
    for clause in _CLAUSE_END.split(sentence):
        if len(clause) <= max_chars:
            clauses.append(clause)
        else:
            clauses.extend(_pack(_words_within(clause, max_chars), max_chars))
    return _pack([c for c in clauses if c], max_chars)


def _pack(items: list[str], max_chars: int) -> list[str]:
    """Consecutive items joined (by a blank unless CJK follows) into parts of at most max_chars."""
    parts: list[str] = []
    current = ""
    for item in items:
        joiner = " " if current and not _is_cjk(item[:1]) else ""
        if current and len(current) + len(joiner) + len(item) > max_chars:
            parts.append(current)
            current = item
        else:
            current = f"{current}{joiner}{item}"
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
