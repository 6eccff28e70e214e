"""Cutting a long document into parts, each small enough for one event to synthesize.

Parts are runs of whole lines (paragraphs, after normalisation); a line longer than a part is cut
between sentences (then clauses, then words: ``function.text.split_sentences``). Where a part ends
depends on the text near the cut, not on everything before it (content-defined boundaries), so a
document re-sent with one paragraph changed yields the same parts everywhere else: their audio is
found in storage and only the changed part is synthesized again. A part with nothing to say (a run
of separator lines such as ``* * *``) is left out: it has no audio, and an event would refuse it.
"""

from __future__ import annotations

import hashlib

from function.languages import detect
from function.text import split_sentences

# A part may end after a line whose hash is 0 modulo this, once it holds half a part: parts average
# a little over half the limit, and a cut moved by an edit is back in step a few lines later.
BOUNDARY_MODULUS = 4


def split_parts(text: str, max_chars: int) -> list[str]:
    """Normalised ``text`` as the parts with something to say, of at most ``max_chars`` characters
    each, in order."""
    units = [
        piece
        for line in text.split("\n")
        for piece in ([line] if len(line) <= max_chars else split_sentences(line, max_chars))
    ]
    parts: list[str] = []
    current: list[str] = []
    size = 0
    for unit in units:
        if current and size + 1 + len(unit) > max_chars:
            parts.append("\n".join(current))
            current, size = [], 0
        size += len(unit) + (1 if current else 0)
        current.append(unit)
        if size >= max_chars // 2 and is_boundary(unit):
            parts.append("\n".join(current))
            current, size = [], 0
    if current:
        parts.append("\n".join(current))
    return [part for part in parts if detect(part) is not None]


def is_boundary(unit: str) -> bool:
    """Whether a part may end after ``unit`` (a line, or an SSML job's utterance)."""
    digest = hashlib.sha256(unit.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big") % BOUNDARY_MODULUS == 0
