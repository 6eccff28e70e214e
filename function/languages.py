"""What language a text is in, read from its writing systems (Unicode scripts), and whether it has
anything speakable at all.

Scripts, not statistics: they are certain on a single word, need no model, and are what decides
whether a voice can read a text at all (an English voice cannot read Han characters; a Mandarin
voice can). The limit: every Latin-script text counts as English, so French or German is read
with English rules by an English voice rather than refused.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

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
    if counts["Hiragana"] or counts["Katakana"]:
        # Japanese writes with Han characters too: kana make the Han run Japanese.
        counts["Hiragana"] += counts.pop("Han", 0)
    totals: Counter[str] = Counter()
    script_of: dict[str, str] = {}
    for script, count in counts.items():
        if count:
            totals[SCRIPT_LANGUAGES[script]] += count
            script_of.setdefault(SCRIPT_LANGUAGES[script], script)
    if (other := letters - sum(counts.values())) > 0:
        totals[UNKNOWN] = other
        script_of[UNKNOWN] = "another"
    ranked = [language for language, _ in totals.most_common()]
    return Detected(tuple(ranked), tuple(script_of[language] for language in ranked))
