"""Language detection by script: the decision behind routing and refusals."""

from __future__ import annotations

import pytest

from function.languages import detect
from tests.refusals import FOREIGN, UNSPEAKABLE


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
        ("Café crème", ("en",)),  # every Latin-script text counts as English (the documented limit)
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
