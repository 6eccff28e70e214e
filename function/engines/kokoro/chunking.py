"""Cutting text and phonemes so that each model call fits Kokoro's context.

Kokoro reads at most 510 phonemes at once (512 positions, two of them the 0 pads). Text is cut at
sentence ends (Latin and Chinese), then clauses, then words; a phoneme string that still does
not fit (a British reading can be a little longer than the estimate) is cut at its own
punctuation and spaces. Pure Python: no model, no G2P of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from function.text import split_sentences

MAX_TOKENS = 510
# Text pieces aim below the hard limit, so a slightly longer reading than the estimate still fits.
PIECE_TOKENS = 460

# A stream's first part: about this many characters (~2 s of Mandarin speech), so its first
# audio comes after ~0.6 s of synthesis at a real-time factor of 0.3 instead of a whole sentence's.
FIRST_PART_CHARS = 8

_CLAUSE = re.compile(r"(?<=[,;:，、；：])\s*")
_PHONEME_BREAKS = (re.compile(r"(?<=[.!?…])\s+"), re.compile(r"(?<=[,;:—])\s*"), re.compile(r" "))


def sentences(text: str) -> list[str]:
    """Sentences, Chinese terminators included (。！？；), never cut by length here."""
    return split_sentences(text, max_chars=len(text) + 1)


def stream_parts(piece: str, first_chars: int = FIRST_PART_CHARS) -> list[str]:
    """``piece`` cut at its clause marks for a listener who is waiting: a short first part (clauses
    up to about ``first_chars`` characters, at least one), then parts that each hold at least twice
    the previous one, so every part is ready before the one before it has finished playing."""
    clauses = [c for c in _CLAUSE.split(piece) if c.strip()]
    parts: list[str] = []
    current, want = "", first_chars
    for clause in clauses:
        if current and len(current) + len(clause) > want:
            parts.append(current)
            current, want = "", 2 * len(current)
        current = _join(current, clause)
    if current:
        parts.append(current)
    return parts


def fit_text(text: str, count: Callable[[str], int], limit: int = PIECE_TOKENS) -> list[str]:
    """``text`` as pieces whose ``count`` (phoneme tokens) is at most ``limit``, cut at clauses, then
    words (or, for unspaced Chinese, halves)."""
    if count(text) <= limit:
        return [text]
    parts = [p for p in _CLAUSE.split(text) if p.strip()]
    if len(parts) == 1:
        parts = _halves(text)
        if len(parts) == 1:  # a single unbreakable token: synthesize() cuts its phonemes
            return [text]
    pieces: list[str] = []
    current = ""
    for part in (piece for p in parts for piece in fit_text(p, count, limit)):
        joined = _join(current, part)
        if current and count(joined) > limit:
            pieces.append(current)
            current = part
        else:
            current = joined
    if current:
        pieces.append(current)
    return pieces


def _join(left: str, right: str) -> str:
    if not left:
        return right
    return f"{left} {right}" if left[-1].isascii() and right[:1].isascii() else left + right


def _halves(text: str) -> list[str]:
    """Two halves at the space nearest the middle, else at the middle character."""
    text = text.strip()
    if len(text) < 2:
        return [text]
    middle = len(text) // 2
    spaces = [i for i, c in enumerate(text) if c == " "]
    cut = min(spaces, key=lambda i: abs(i - middle)) if spaces else middle
    return [p for p in (text[:cut].strip(), text[cut:].strip()) if p]


def fit_phonemes(tokens: str, limit: int = MAX_TOKENS) -> list[str]:
    """A phoneme string (only vocabulary characters) as chunks of at most ``limit`` characters,
    cut at sentence punctuation, then clause punctuation, then spaces, then anywhere."""
    return _fit(tokens, limit, 0)


def _fit(tokens: str, limit: int, level: int) -> list[str]:
    if len(tokens) <= limit:
        return [tokens] if tokens.strip() else []
    if level == len(_PHONEME_BREAKS):
        return [tokens[i : i + limit] for i in range(0, len(tokens), limit)]
    chunks: list[str] = []
    current = ""
    for part in _PHONEME_BREAKS[level].split(tokens):
        for piece in _fit(part, limit, level + 1):
            joined = f"{current} {piece}" if current else piece
            if len(joined) <= limit:
                current = joined
            else:
                if current:
                    chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return [c.strip() for c in chunks if c.strip()]
