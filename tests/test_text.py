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


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert split_sentences("她说：“我明天就去北京！”好的。（完）") == [
        "她说：“我明天就去北京！”",
        "好的。",
        "（完）",
    ]
    assert split_sentences("(Yes.) She said so. [Really?] \"Stop!\" 'Go.' End") == [
        "(Yes.)",
        "She said so.",
        "[Really?]",
        '"Stop!"',
        "'Go.'",
        "End",
    ]
    assert split_sentences("「好。」『行！』") == ["「好。」", "『行！』"]


def test_abbreviations_initials_and_lower_case_do_not_end_sentences() -> None:
    text = (
        "Meet me at 10:30 a.m. on Jan. 5th in the U.S. Embassy. J. K. Rowling arrived. "
        '"Stop!" he shouted. See Fig. 3, e.g. the chart. It ended at 5 p.m. Then we left.'
    )
    assert split_sentences(text) == [
        "Meet me at 10:30 a.m. on Jan. 5th in the U.S. Embassy.",
        "J. K. Rowling arrived.",
        '"Stop!" he shouted.',
        "See Fig. 3, e.g. the chart.",
        "It ended at 5 p.m. Then we left.",  # a dotted abbreviation is never taken for an end
    ]
    # Ordinary short words before a period still end sentences.
    assert split_sentences("He sat. She stood. I ran. Go.") == ["He sat.", "She stood.", "I ran.", "Go."]


def test_long_sentences_are_never_cut_inside_a_clause_that_fits() -> None:
    clauses = [f"clause {i} " + "word " * (i % 7 + 3) + "end" for i in range(30)]
    sentence = ", ".join(clauses) + "."
    parts = split_sentences(sentence, max_chars=100)
    assert all(len(p) <= 100 for p in parts) and len(parts) > 1
    for part in parts:
        # Every part is a run of whole clauses: it starts a clause and ends one.
        assert part.startswith("clause ") and part.endswith((",", "."))
    chinese = "，".join(f"第{i}个分句有一些字" for i in range(60)) + "。"
    parts = split_sentences(chinese, max_chars=50)
    assert "".join(parts) == chinese and all(len(p) <= 50 for p in parts)
    assert all(p.endswith(("，", "。")) for p in parts)
