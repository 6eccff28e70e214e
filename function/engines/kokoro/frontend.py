"""Text to Kokoro phonemes: a Mandarin reader for the zf_/zm_ voices, hibari's English G2P.

Mandarin is read in three steps: ``normalize.ChineseNormalizer`` (Traditional to Simplified with
OpenCC, numbers and symbols in words with WeTextProcessing's grammar), ``pinyin.PinyinReader``
(pypinyin readings, jieba words, tone sandhi) and misaki 0.9.4's ``pinyin_to_ipa`` + ``retone``,
the mapping Kokoro v1.0 was trained with (its ``ZHG2P`` legacy path, which had no sandhi, no 两
and no Traditional phrases). Runs of Latin words inside Chinese go to hibari's English G2P (a port
of misaki's, without the GPL phonemizer); single letters are spelled (A股 is "A", not "uh").

Importing this module imports jieba, pypinyin, cn2an and misaki (jieba's POS tagger comes with
the front end, after its dictionary: ``dictionary.use``): only ``KokoroEngine`` imports it,
lazily; OpenCC is imported when the front end is built, wetext when the first text with a digit
is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from misaki.zh import ZHG2P

from function.engines.kokoro import dictionary
from function.engines.kokoro.normalize import ChineseNormalizer, has_han, is_chinese
from function.engines.kokoro.pinyin import PinyinReader, Word
from function.languages import pinyin_syllables
from function.phonetics import model_vocab

# Latin words, with the spaces, apostrophes, hyphens and light punctuation between them, so that
# "Hello, how are you" reaches the English G2P as one phrase.
_LATIN_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]*(?:[,;:]?\s+[A-Za-z][A-Za-z'’-]*)*")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[,.!?;:)”…])")
# A lone "A" or "a" is the English article to the G2P; in Chinese text it is the letter (A股,
# 维生素A, A4纸): its name in Kokoro's English phonemes, stressed as a spelled letter is.
_LETTER_A = "ˈA"


class EnglishG2P:
    """English text to phonemes: hibari's port of misaki's G2P (American or British rules)."""

    def __init__(self, british: bool) -> None:
        # Imported here: hibari.g2p pulls in the hibari package (and scipy), ~0.15 s that a
        # Chinese-only instance never pays.
        from hibari.g2p import G2P

        self._g2p = G2P(british=british)

    def __call__(self, text: str) -> str:
        return self._g2p(text)

    def words(self, text: str) -> list[tuple[str, str]]:
        """``text`` as the G2P's tokens (words, numbers read out, punctuation), each with its
        phonemes: in order they spell what ``__call__`` gives, less its blanks (speech marks)."""
        from hibari.g2p.normalize import normalize

        tokens = self._g2p.phonemize_tokens(self._g2p.tokenize(normalize(text)))
        return [(token.text, self._g2p.unk if token.phonemes is None else token.phonemes) for token in tokens]


@dataclass(frozen=True)
class Reading:
    """How a Chinese text is read: the characters as spoken (Simplified, numbers in words) and the
    tone-numbered pinyin of its Han characters, Latin words kept as written."""

    spoken: str
    pinyin: str


class MandarinG2P:
    """Mandarin (with English words inside it) to phonemes, for the zf_/zm_ voices."""

    def __init__(self, english: Callable[[], EnglishG2P]) -> None:
        # The American G2P, built on its first use (see ``TextFrontEnd``).
        self._english = english
        self._normalize = ChineseNormalizer()
        self._read = PinyinReader()

    def normalize(self, text: str) -> str:
        """Text with Han characters as it is read: Simplified, numbers in words. Any other text is
        left as it is: pieces are cut before a voice is chosen, and "2024" alone is read the
        English way by an English voice (a Mandarin voice still reads it the Chinese way)."""
        return self._normalize(text) if has_han(text) else text

    def reading(self, text: str) -> Reading:
        if (syllables := pinyin_syllables(text)) is not None:
            return Reading(text, " ".join(syllables))
        spoken = self._normalize(text) if is_chinese(text) else text
        syllables: list[str] = []
        for part, is_latin in _split_latin(spoken):
            if is_latin:
                syllables.append(part.strip())
            else:
                syllables.extend(s for w in self._read(part) for s in w.pinyin)
        return Reading(spoken, " ".join(syllables))

    def __call__(self, text: str) -> str:
        if pinyin_syllables(text) is not None:
            # Tone-marked pinyin (nǐ hǎo): the syllables it spells, word by word, its punctuation
            # kept for the pauses.
            return _SPACE_BEFORE_PUNCT.sub("", " ".join(_pinyin_phonemes(text).split()))
        if not is_chinese(text):
            # Plain English given to a Mandarin voice: the English G2P reads it, digits included.
            return self._english()(text)
        parts = [
            self._letters(part) if is_latin else self._mandarin(part)
            for part, is_latin in _split_latin(self._normalize(text))
        ]
        joined = " ".join(p for p in parts if p)
        return _SPACE_BEFORE_PUNCT.sub("", " ".join(joined.split()))

    def words(self, text: str) -> list[tuple[str, str]]:
        """``text`` as words with their phonemes (a jieba word or a Latin word each; punctuation
        apart): in order they spell what ``__call__`` gives, less its blanks (speech marks)."""
        if pinyin_syllables(text) is not None:
            return [
                (word, _pinyin_phonemes(word))
                for word in re.split(r"(\s+|[,.!?;:，。！？、；：]+)", text)
                if word.strip()
            ]
        if not is_chinese(text):
            return self._english().words(text)
        words: list[tuple[str, str]] = []
        for part, is_latin in _split_latin(self._normalize(text)):
            if is_latin and part.strip() in ("A", "a"):
                words.append((part.strip(), _LETTER_A))
            elif is_latin:
                words.extend(self._english().words(part))
            elif part.strip():
                words.extend((w.text, _word_phonemes(w)) for w in self._read(ZHG2P.map_punctuation(part)))
        return words

    def _letters(self, run: str) -> str:
        return _LETTER_A if run.strip() in ("A", "a") else self._english()(run)

    def _mandarin(self, text: str) -> str:
        if not text.strip():
            return ""
        return "".join(_word_phonemes(word) for word in self._read(ZHG2P.map_punctuation(text)))


def _pinyin_phonemes(text: str) -> str:
    out: list[str] = []
    for word in re.split(r"(\s+|[,.!?;:，。！？、；：]+)", text):
        syllables = pinyin_syllables(word) if word.strip() else None
        if syllables is not None:
            out.append("".join(_syllable(s) for s in syllables))
        else:
            out.append(ZHG2P.map_punctuation(word) if word.strip() else " ")
    return "".join(out)


def _split_latin(text: str) -> list[tuple[str, bool]]:
    """``text`` cut into runs of Latin words (True) and the rest (False), in order."""
    parts: list[tuple[str, bool]] = []
    position = 0
    for run in _LATIN_RUN.finditer(text):
        parts.append((text[position : run.start()], False))
        parts.append((run.group(), True))
        position = run.end()
    parts.append((text[position:], False))
    return [(part, latin) for part, latin in parts if part]


def _word_phonemes(word: Word) -> str:
    """A word's phonemes, with a space after it as misaki's v1.0 path puts one between words;
    punctuation and spaces pass through (the vocab keeps the punctuation it has ids for)."""
    if not word.pinyin:
        return word.text
    return "".join(_syllable(s) for s in word.pinyin) + " "


def _syllable(pinyin: str) -> str:
    try:
        return pinyin_ipa(pinyin)
    except ValueError:
        # pinyin_to_ipa rejects a few readings pypinyin gives rare characters (兙, 瓩: 10 of the
        # 20,902 in U+4E00-U+9FA5): leave that syllable out rather than fail the request.
        return ""


def pinyin_ipa(pinyin: str) -> str:
    """One tone-numbered syllable in Kokoro's phonemes (misaki's mapping), or ValueError."""
    try:
        return ZHG2P.py2ipa(pinyin).replace(chr(815), "")
    except (ValueError, AssertionError, KeyError, IndexError):
        raise ValueError(f"{pinyin!r} is not a Mandarin syllable") from None


def pinyin_phonemes(syllables: Iterable[str]) -> str:
    """Tone-numbered syllables (a caller's <phoneme alphabet="pinyin">) as one word's phonemes,
    tone sandhi not applied: the caller wrote the tones to say."""
    return "".join(pinyin_ipa(s) for s in syllables) + " "


def joined(parts: Iterable[str]) -> str:
    """Phonemes of consecutive segments as one utterance: blanks folded, none before punctuation."""
    return _SPACE_BEFORE_PUNCT.sub("", " ".join(" ".join(parts).split()))


class TextFrontEnd:
    """The phonemizer for each offered language, and the token count that pieces are cut by.

    The Mandarin front end is built here (jieba's dictionary mapped, its HMM tables, pypinyin,
    OpenCC, misaki: ~0.35 s, the engine's main language; wetext's grammar on the first text with
    a digit). Each English G2P is built on first use instead (~0.35 s and ~90 MB of lexicons
    each): Chinese text without Latin words never needs one, and only British voices need the
    British one. That keeps a Mandarin instance's cold start (process start -> first audio)
    ~0.4 s shorter; the first English (or mixed) request pays it once.
    """

    def __init__(self, jieba_trie: Path) -> None:
        dictionary.use(jieba_trie)
        self.vocab = model_vocab()
        self._english: dict[bool, EnglishG2P] = {}
        self.mandarin = MandarinG2P(lambda: self.english(british=False))

    def english(self, british: bool) -> EnglishG2P:
        if british not in self._english:
            self._english[british] = EnglishG2P(british=british)
        return self._english[british]

    def phonemes(self, text: str, language: str) -> str:
        """``text`` in the phoneme alphabet, for a voice of ``language`` ("zh-CN", "en-US", "en-GB")."""
        if language == "zh-CN":
            return self.mandarin(text)
        return self.english(british=language == "en-GB")(text)

    def words(self, text: str, language: str) -> list[tuple[str, str]]:
        """``phonemes``' words: each with its phonemes, in the order they are spoken."""
        if language == "zh-CN":
            return self.mandarin.words(text)
        return self.english(british=language == "en-GB").words(text)

    def tokens(self, phonemes: str) -> str:
        """The phonemes the model has ids for (anything else would be dropped by the vocab anyway)."""
        return "".join(c for c in phonemes if c in self.vocab)

    def count(self, text: str) -> int:
        """Estimated token count of ``text``: Mandarin rules when it has Han characters, else American."""
        return len(self.tokens(self.phonemes(text, "zh-CN")))

    def normalize(self, text: str) -> str:
        return self.mandarin.normalize(text)
