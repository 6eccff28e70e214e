"""Text normalisation (the cache key's view of text) and sentence splitting."""

from __future__ import annotations

from function.text import normalize_text, split_sentences


def test_normalize_folds_blanks_and_controls() -> None:
    assert normalize_text("  Hello\t  world \r\n\n\n second\x07 line ") == "Hello world\nsecond line"
    assert normalize_text("Cafe\u0301") == "Café"  # NFC


def test_english_sentences_keep_abbreviations_and_decimals() -> None:
    text = "Dr. Smith paid $3.50 for tea. Was it worth it? Yes! Mr. Jones disagreed."
    assert split_sentences(text) == [
        "Dr. Smith paid $3.50 for tea.",
        "Was it worth it?",
        "Yes!",
        "Mr. Jones disagreed.",
    ]


def test_chinese_sentences_split_without_spaces() -> None:
    assert split_sentences("你好。今天天气很好！我们去公园吧？") == [
        "你好。",
        "今天天气很好！",
        "我们去公园吧？",
    ]


def test_lines_are_sentence_boundaries() -> None:
    assert split_sentences("A heading\nThe body text. More body") == [
        "A heading",
        "The body text.",
        "More body",
    ]


def test_long_sentences_are_cut_at_clauses_then_words() -> None:
    sentence = ", ".join(f"clause number {i} goes on for a while" for i in range(20)) + "."
    parts = split_sentences(sentence, max_chars=120)
    assert all(len(p) <= 120 for p in parts) and len(parts) > 1
    assert " ".join(parts).replace(" ,", ",") == sentence
    cjk = "很" * 250
    assert [len(p) for p in split_sentences(cjk, max_chars=100)] == [100, 100, 50]
