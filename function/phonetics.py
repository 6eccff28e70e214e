"""Pronunciations as callers write them, checked and put in one form before any engine sees them.

Pinyin comes tone-numbered ("chong2 qing4") or tone-marked ("chóng qìng") and leaves as
tone-numbered syllables; IPA leaves as the misaki alphabet Kokoro and hibari were trained on
(misaki writes the English diphthongs as one letter each, and "ɹ" and "ɡ" for r and g).
"""

from __future__ import annotations

import importlib.util
import json
import re
from functools import lru_cache
from pathlib import Path

from function.languages import pinyin_syllables

_NUMBERED = re.compile(r"[a-zü:v]+[1-5]")
# IPA as dictionaries write it -> misaki's letters (its docs' table for American and British
# English): the longest sequences first.
_IPA_TO_MISAKI = (
    ("eɪ", "A"),
    ("aɪ", "I"),
    ("aʊ", "W"),
    ("ɔɪ", "Y"),
    ("oʊ", "O"),
    ("əʊ", "Q"),
    ("tʃ", "ʧ"),
    ("dʒ", "ʤ"),
    ("ɝ", "ɜɹ"),
    ("ɚ", "əɹ"),
    ("r", "ɹ"),
    ("g", "ɡ"),
    ("'", "ˈ"),
    (".", " "),  # syllable dots are not pauses
)


def numbered_pinyin(ph: str) -> tuple[str, ...]:
    """Tone-numbered syllables ("chong2", "qing4") of ``ph``, or ValueError saying what is wrong."""
    words = ph.strip().lower().replace("ü", "v").replace("u:", "v").split()
    if words and all(_NUMBERED.fullmatch(w) for w in words):
        return tuple(words)
    marked = pinyin_syllables(ph)
    if marked is not None:
        return tuple(marked)
    raise ValueError(
        f"{ph!r} is not pinyin: write tone-numbered syllables separated by spaces (chong2 qing4) "
        "or tone-marked pinyin (chóng qìng)"
    )


def misaki_ipa(ph: str) -> str:
    """``ph`` (IPA) in misaki's letters; stress marks and spaces kept."""
    out = ph.strip()
    for ipa, misaki in _IPA_TO_MISAKI:
        out = out.replace(ipa, misaki)
    return " ".join(out.split())


def unknown_symbols(phonemes: str, vocab: dict[str, int]) -> str:
    """The symbols of ``phonemes`` a model has no id for (spaces are fine), in order, once each."""
    return "".join(dict.fromkeys(c for c in phonemes if c != " " and c not in vocab))


@lru_cache(maxsize=1)
def model_vocab() -> dict[str, int]:
    """Kokoro v1.0's phoneme vocabulary, which hibari (trained on Kokoro's alphabet) ships.

    Found with find_spec rather than importlib.resources, which would import the hibari package
    (and scipy) for one JSON file.
    """
    spec = importlib.util.find_spec("hibari")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("hibari-tts is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "vocab.json"
    return json.loads(path.read_text("utf-8"))
