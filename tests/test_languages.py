"""Language detection by script and, within a script, by fastText's identifier: the decision
behind routing and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from function.engines.kokoro.normalize import has_han
from function.languages import detect, identify, pinyin_syllables
from tests.refusals import FOREIGN, UNSPEAKABLE

LATIN_SET = Path(__file__).parent / "data" / "latin_languages.tsv"


@pytest.mark.parametrize("language", sorted(FOREIGN))
def test_each_sample_language_is_detected(language: str) -> None:
    detected = detect(FOREIGN[language])
    assert detected is not None and detected.primary == language, detected


@pytest.mark.parametrize("name", sorted(UNSPEAKABLE))
def test_text_with_nothing_to_say_has_no_language(name: str) -> None:
    assert detect(UNSPEAKABLE[name]) is None


@pytest.mark.parametrize(
    ("text", "languages"),
    [
        ("我昨天买了一台 iPhone，价格是 5999 元。", ("zh", "en")),  # Han letters outnumber Latin
        ("I love 北京 duck.", ("en", "zh")),
        ("東京へ行きます。", ("ja",)),  # kana make the Han characters Japanese
        ("Hello, world!", ("en",)),
        ("Café crème", ("en",)),  # too short for the identifier to be sure: English
        ("I love Paris", ("en",)),  # the identifier says German (0.46): not sure enough
        ("这家店叫做好吃の店", ("zh",)),  # a stray kana leaves Chinese text Chinese
        ("我們今天去銀行辦事", ("zh",)),  # Traditional Mandarin is not Cantonese
        ("佢哋係唔係學生？", ("yue",)),
        ("Nǐ hǎo, shìjiè!", ("zh",)),  # tone-marked pinyin is Mandarin
        ("ni hao", ("en",)),  # without tone marks it could be anything; the English voice reads it
        ("¿Dónde está la biblioteca?", ("es",)),
        ("ᚠᚢᚦᚨᚱᚲ", ("und",)),  # a script outside the table is still a language, named "und"
    ],
)
def test_mixed_text_lists_every_language_most_letters_first(text: str, languages: tuple[str, ...]) -> None:
    detected = detect(text)
    assert detected is not None and detected.languages == languages


def test_digits_alone_are_speakable_in_any_language() -> None:
    detected = detect("2024 — 100%")
    assert detected is not None and detected.languages == () and detected.primary is None
    assert detected.describe() == "digits only"


@pytest.mark.parametrize(
    ("text", "syllables"),
    [
        ("nǐ hǎo", ["ni3", "hao3"]),
        ("Běijīng huānyíng nǐ!", ["bei3", "jing1", "huan1", "ying2", "ni3"]),
        ("lǜsè de shù", ["lv4", "se4", "de5", "shu4"]),  # ü, and the neutral tone unmarked
        ("Xī'ān", ["xi1", "an1"]),
    ],
)
def test_tone_marked_pinyin_is_read_as_syllables(text: str, syllables: list[str]) -> None:
    assert pinyin_syllables(text) == syllables


@pytest.mark.parametrize("text", ["ni hao", "Café crème", "nǐ hǎo world", "My résumé", "nǐ 好"])
def test_text_that_is_not_tone_marked_pinyin_is_not(text: str) -> None:
    # The limit: a text whose every word is spelled like pinyin ("résumé" alone: ré-su-mé) is
    # taken for pinyin; one English word next to it ("My") is enough to tell.
    assert pinyin_syllables(text) is None


def test_mandarin_texts_are_not_taken_for_cantonese() -> None:
    """The identifier's false alarms on this project's own Mandarin reading set (Simplified and
    Traditional): none may be called Cantonese."""
    from tests.kokoro.test_zh_readings import load_cases

    texts = [text for _, text, *_ in load_cases() if has_han(text)]
    assert len(texts) > 350
    assert [t for t in texts if identify(t)[0] == "yue"] == []


def test_the_identifier_never_refuses_english_and_finds_most_other_languages() -> None:
    """Short everyday texts (tests/data/latin_languages.tsv): English ones with accented loanwords
    and names are all English; nine in ten of the others are named right (the misses are read by
    an English voice, as before the identifier, never refused wrongly)."""
    rows = [line.split("\t") for line in LATIN_SET.read_text("utf-8").splitlines() if line and line[0] != "#"]
    english = [text for language, text in rows if language == "en"]
    foreign = [(language, text) for language, text in rows if language != "en"]
    assert len(english) >= 25 and len(foreign) >= 25
    refused = [t for t in english if (d := detect(t)) is None or d.languages != ("en",)]
    assert refused == []
    named = sum((d := detect(text)) is not None and d.primary == language for language, text in foreign)
    assert named >= 0.85 * len(foreign), f"{named}/{len(foreign)}"
