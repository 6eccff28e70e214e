"""The lite text side against upstream's: tokenizer ids, number spelling, splitting."""

from __future__ import annotations

import random

import pytest

from function.engines.cosyvoice.frontend import normalize, split_paragraph
from function.engines.cosyvoice.numbers import chinese_integer, english_integer
from function.engines.cosyvoice.tokenizer import TextTokenizer
from loadtest.upstream_cosyvoice.random_model import whisper_vocab

TEXTS = [
    "Hello, world! It's a test of the tokenizer.",
    "今天天气很好，我们去公园散步吧。",
    "Mixed 中文 and English, 混合文本！Don't stop.",
    "Numbers: 0 7 42 3.14159 1,234,567 and 2024年10月1日",
    "Punctuation… “quotes” — dashes; (parens) [brackets] {braces} ¿¡ ？！。，",
    "日本語のテキストと한국어 텍스트, 粤语：佢哋喺度。",
    "<|endoftext|> special tokens <|en|> are allowed as upstream allows them",
    "  leading spaces,\ttabs\nand new lines  ",
]


@pytest.fixture(scope="module")
def tokenizer() -> TextTokenizer:
    return TextTokenizer(whisper_vocab())


@pytest.fixture(scope="module")
def whisper_tokenizer():
    from whisper.tokenizer import get_tokenizer

    # What the model's cosyvoice.yaml names as get_tokenizer.
    return get_tokenizer(multilingual=True, num_languages=100, language="en", task="transcribe")


@pytest.mark.parametrize("text", TEXTS)
def test_token_ids_equal_whispers(tokenizer: TextTokenizer, whisper_tokenizer, text: str) -> None:
    assert tokenizer.encode(text) == whisper_tokenizer.encode(text, allowed_special="all")


def test_vocabulary_size_is_the_models_text_token_size(tokenizer: TextTokenizer) -> None:
    assert tokenizer.vocab_size == 51866


def test_english_numbers_match_inflect() -> None:
    import inflect

    engine = inflect.engine()
    rng = random.Random(0)
    numbers = [str(n) for n in range(0, 1200)]
    numbers += [str(rng.randint(0, 10 ** rng.randint(1, 18))) for _ in range(2000)]
    numbers += ["007", "1000000", "1000005", "1001001"]
    for digits in numbers:
        assert english_integer(digits) == engine.number_to_words(digits), digits


@pytest.mark.parametrize(
    ("digits", "words"),
    [
        ("0", "零"),
        ("10", "十"),
        ("12", "十二"),
        ("105", "一百零五"),
        ("1010", "一千零一十"),
        ("10001", "一万零一"),
        ("12345", "一万二千三百四十五"),
        ("100010001", "一亿零一万零一"),
    ],
)
def test_chinese_numerals(digits: str, words: str) -> None:
    assert chinese_integer(digits) == words


def test_english_normalisation_spells_numbers(tokenizer: TextTokenizer) -> None:
    pieces = normalize("I paid $5 for 3 apples on the 21st, a 45% discount: 2.5 each", tokenizer.encode)
    assert pieces == [
        "I paid five dollars for three apples on the twenty-first, a forty-five percent discount: "
        "two point five each."
    ]


def test_chinese_normalisation_as_upstreams_fallback(tokenizer: TextTokenizer) -> None:
    pieces = normalize("今天是2024年10月1日 ，气温25.5度（晴）", tokenizer.encode)
    assert pieces == ["今天是二零二四年十月一日，气温二十五点五度晴。"]


def test_punctuation_only_input_gives_nothing(tokenizer: TextTokenizer) -> None:
    assert normalize("！？…", tokenizer.encode) == []
    assert normalize("   ", tokenizer.encode) == []


def test_split_paragraph_matches_upstream(tokenizer: TextTokenizer) -> None:
    from functools import partial

    from loadtest.upstream_cosyvoice import install_stubs

    install_stubs()
    from cosyvoice.utils.frontend_utils import split_paragraph as upstream_split

    english = " ".join(f"Sentence number {w} is here; and it goes on." for w in "abcdefghijklmnop")
    chinese = "".join(f"这是第{w}个句子，它很长很长很长很长。" for w in "一二三四五六七八九十")
    encode = partial(tokenizer.encode)
    assert split_paragraph(english, encode, chinese=False) == upstream_split(
        english, encode, "en", 80, 60, 20, False
    )
    assert split_paragraph(chinese, encode, chinese=True) == upstream_split(
        chinese, encode, "zh", 80, 60, 20, False
    )
