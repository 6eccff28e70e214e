"""Text to Kokoro phonemes: misaki's Mandarin front end (v1.0) and hibari's English G2P.

Mandarin is misaki 0.9.4's ``ZHG2P`` on its legacy path (``version=None``, the front end Kokoro v1.0
was trained with): cn2an reads numbers, jieba segments, pypinyin gives tone-numbered pinyin,
``pinyin_to_ipa`` + ``ZHG2P.retone`` make phonemes, and its punctuation mapping keeps pauses. That
path passes Latin letters through raw (the model cannot read them), so mixed text is split here:
runs of Latin words go to hibari's English G2P (a port of misaki's, without the GPL phonemizer)
and everything else to ``ZHG2P``. Numbers are written out in Chinese first (``normalize.py``), so
``iPhone 15`` inside a Chinese sentence is read "iPhone 十五", as a Mandarin speaker says it.

Importing this module imports jieba, pypinyin, cn2an and misaki: only ``KokoroEngine`` imports
it, lazily.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
from collections.abc import Callable
from pathlib import Path

import jieba
from misaki.zh import ZHG2P

from function.engines.kokoro.normalize import has_han, normalize_zh

# Latin words, with the spaces, apostrophes, hyphens and light punctuation between them, so that
# "Hello, how are you" reaches the English G2P as one phrase.
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[,;:]?\s+[A-Za-z][A-Za-z'’-]*)*")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[,.!?;:)”…])")


def load_vocab() -> dict[str, int]:
    """Kokoro v1.0's phoneme vocabulary (hibari ships Kokoro's own vocab.json).

    Found with find_spec rather than importlib.resources, which would import the hibari package
    (and scipy) for one JSON file.
    """
    spec = importlib.util.find_spec("hibari")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("hibari-tts is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "assets" / "vocab.json"
    return json.loads(path.read_text("utf-8"))


def use_jieba_cache(cache: Path) -> None:
    """Point jieba's default tokenizer at a prebuilt cache and load it now (no temp dir, no rebuild)."""
    if not cache.is_file():
        raise FileNotFoundError(f"no jieba cache at {cache}")
    jieba.setLogLevel(logging.WARNING)  # jieba logs its dictionary loading to stderr at DEBUG
    jieba.dt.tmp_dir = str(cache.parent)
    jieba.dt.cache_file = cache.name
    jieba.dt.initialize()


def build_jieba_cache(cache: Path) -> None:
    """Build jieba's prefix-dictionary cache at ``cache`` (jieba writes it atomically)."""
    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.tmp_dir = str(cache.parent)
    tokenizer.cache_file = cache.name
    tokenizer.initialize()
    if not cache.is_file():
        raise OSError(f"jieba did not write its cache to {cache}")


class EnglishG2P:
    """English text to phonemes: hibari's port of misaki's G2P (American or British rules)."""

    def __init__(self, british: bool) -> None:
        # Imported here: hibari.g2p pulls in the hibari package (and scipy), ~0.15 s that a
        # Chinese-only instance never pays.
        from hibari.g2p import G2P

        self._g2p = G2P(british=british)

    def __call__(self, text: str) -> str:
        return self._g2p(text)


class MandarinG2P:
    """Mandarin (with English words inside it) to phonemes, for the zf_/zm_ voices."""

    def __init__(self, english: Callable[[str], str]) -> None:
        self._english = english
        self._zh = ZHG2P(version=None)

    @staticmethod
    def normalize(text: str) -> str:
        """The text as it is read: numbers in Chinese when the text is Chinese, else unchanged."""
        return normalize_zh(text) if has_han(text) else text

    def __call__(self, text: str) -> str:
        if not has_han(text):
            # Plain English given to a Mandarin voice: the English G2P reads it, digits included.
            return self._english(text)
        text = normalize_zh(text)
        parts: list[str] = []
        position = 0
        for run in _LATIN_RUN.finditer(text):
            parts.append(self._mandarin(text[position : run.start()]))
            parts.append(self._english(run.group()))
            position = run.end()
        parts.append(self._mandarin(text[position:]))
        joined = " ".join(p for p in parts if p)
        return _SPACE_BEFORE_PUNCT.sub("", " ".join(joined.split()))

    def _mandarin(self, text: str) -> str:
        if not text.strip():
            return ""
        try:
            return self._zh(text)[0]
        except (ValueError, AssertionError):
            # pinyin_to_ipa rejects the readings of a few rare characters (兙, 瓩: 10 of the 20,902
            # in U+4E00-U+9FA5): leave those out rather than fail the whole request.
            return self._zh("".join(c for c in text if _readable(c)))[0]


def _readable(char: str) -> bool:
    if not has_han(char):
        return True
    try:
        ZHG2P.word2ipa(char)
    except (ValueError, AssertionError):
        return False
    return True


class TextFrontEnd:
    """The phonemizer for each offered language, and the token count that pieces are cut by.

    The Mandarin front end is built here (jieba's dictionary, pypinyin, cn2an, misaki: ~1 s, the
    engine's main language). Each English G2P is built on first use instead (~0.35 s and ~90 MB
    of lexicons each): Chinese text without Latin words never needs one, and only British voices
    need the British one. That keeps a Mandarin instance's cold start (process start -> first
    audio) ~0.4 s shorter; the first English (or mixed) request pays it once.
    """

    def __init__(self, jieba_cache: Path) -> None:
        use_jieba_cache(jieba_cache)
        self.vocab = load_vocab()
        self._english: dict[bool, EnglishG2P] = {}
        self.mandarin = MandarinG2P(lambda text: self.english(british=False)(text))

    def english(self, british: bool) -> EnglishG2P:
        if british not in self._english:
            self._english[british] = EnglishG2P(british=british)
        return self._english[british]

    def phonemes(self, text: str, language: str) -> str:
        """``text`` in the phoneme alphabet, for a voice of ``language`` ("zh-CN", "en-US", "en-GB")."""
        if language == "zh-CN":
            return self.mandarin(text)
        return self.english(british=language == "en-GB")(text)

    def tokens(self, phonemes: str) -> str:
        """The phonemes the model has ids for (anything else would be dropped by the vocab anyway)."""
        return "".join(c for c in phonemes if c in self.vocab)

    def count(self, text: str) -> int:
        """Estimated token count of ``text``: Mandarin rules when it has Han characters, else American."""
        return len(self.tokens(self.phonemes(text, "zh-CN")))

    def normalize(self, text: str) -> str:
        return self.mandarin.normalize(text)
