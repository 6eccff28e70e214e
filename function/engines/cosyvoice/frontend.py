"""Text normalisation and splitting for CosyVoice: upstream's ``CosyVoiceFrontEnd.text_normalize``.

Upstream first runs WeTextProcessing's Chinese (text with Chinese characters) or English grammar
(``wetext.py``; 136 of 136 test texts give upstream's pieces, tests/cosyvoice/test_normaliser.py),
then, for Chinese: newlines and blanks between Chinese characters go, ``²``/``³`` become
平方/立方, ``.`` becomes ``。``, `` - `` becomes ``，``, brackets go, a trailing comma becomes
``。``, and the text is split into pieces of 60-80 characters at sentence punctuation; for
English: the digits the grammar left are spelled out and the text is split into pieces of 60-80
tokens. Pieces of punctuation only are dropped.

Without WeTextProcessing (not installed, or its grammar not compiled into the model directory)
built-in rules stand in for the grammars: decimals, percentages, currency amounts ($ € £ ¥),
English ordinals (1st, 2nd) and 4-digit years before 年; Chinese numbers become Chinese numerals
(long digit runs and years are read digit by digit). Dates, times, units and abbreviations are
left as written: 68 of the 136 test texts give upstream's pieces. Upstream's French branch is not
mirrored (the SFT model has no French speaker).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from function.engines.cosyvoice.numbers import chinese_digits, chinese_integer, english_integer
from function.engines.cosyvoice.wetext import WeText

_CHINESE = re.compile(r"[\u4e00-\u9fff]")

# Upstream's split_paragraph parameters for both languages.
TOKEN_MAX_N = 80
TOKEN_MIN_N = 60
MERGE_LEN = 20
_ZH_STOPS = ("。", "？", "！", "；", "：", "、", ".", "?", "!", ";")
_EN_STOPS = (".", "?", "!", ";", ":")

_EN_ORDINALS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_CURRENCY_EN = {
    "$": ("dollar", "dollars"),
    "€": ("euro", "euros"),
    "£": ("pound", "pounds"),
    "¥": ("yuan", "yuan"),
}
_CURRENCY_ZH = {"$": "美元", "€": "欧元", "£": "英镑", "¥": "元"}


def contains_chinese(text: str) -> bool:
    return _CHINESE.search(text) is not None


def is_only_punctuation(text: str) -> bool:
    """Upstream's ``^[\\p{P}\\p{S}]*$`` (blanks count as content there too)."""
    return all(unicodedata.category(c)[0] in "PS" for c in text)


# --- English ---------------------------------------------------------------------------------


def _en_ordinal(match: re.Match[str]) -> str:
    words = english_integer(match.group(1))
    head, _, last = words.rpartition(" ")
    last_head, dash, last_word = last.rpartition("-")
    if last_word in _EN_ORDINALS:
        last_word = _EN_ORDINALS[last_word]
    elif last_word.endswith("y"):
        last_word = last_word[:-1] + "ieth"
    else:
        last_word += "th"
    last = f"{last_head}{dash}{last_word}"
    return f"{head} {last}" if head else last


def _en_decimal(match: re.Match[str]) -> str:
    fraction = " ".join(english_integer(d) for d in match.group(2))
    return f"{english_integer(match.group(1))} point {fraction}"


def _en_currency(match: re.Match[str]) -> str:
    singular, plural = _CURRENCY_EN[match.group(1)]
    amount = match.group(2).replace(",", "")
    return f"{amount} {singular if amount == '1' else plural}"


def normalize_english(text: str) -> str:
    text = re.sub(r"([$€£¥])\s?(\d[\d,]*(?:\.\d+)?)", _en_currency, text)
    text = re.sub(r"(\d),(?=\d{3}\b)", r"\1", text)
    text = re.sub(r"(\d+)\s?%", r"\1 percent", text)
    text = re.sub(r"\b(\d+)(?:st|nd|rd|th)\b", _en_ordinal, text)
    text = re.sub(r"(\d+)\.(\d+)", _en_decimal, text)
    # Upstream's spell_out_number: every remaining run of digits, in words.
    return re.sub(r"\d+", lambda m: english_integer(m.group()), text)


# --- Chinese ---------------------------------------------------------------------------------


def _zh_number(match: re.Match[str]) -> str:
    digits = match.group()
    # Phone numbers, ids and the like are read digit by digit.
    return (
        chinese_digits(digits)
        if len(digits) > 8 or (digits.startswith("0") and len(digits) > 1)
        else chinese_integer(digits)
    )


def normalize_chinese_numbers(text: str) -> str:
    text = re.sub(r"([$€£¥])\s?(\d+(?:\.\d+)?)", lambda m: f"{m.group(2)}{_CURRENCY_ZH[m.group(1)]}", text)
    text = re.sub(r"(\d+(?:\.\d+)?)\s?%", r"百分之\1", text)
    text = re.sub(r"(\d{4})(?=年)", lambda m: chinese_digits(m.group(1)), text)
    text = re.sub(
        r"(\d+)\.(\d+)", lambda m: f"{chinese_integer(m.group(1))}点{chinese_digits(m.group(2))}", text
    )
    return re.sub(r"\d+", _zh_number, text)


def _replace_blank(text: str) -> str:
    """Upstream's replace_blank: keep a space only between two non-space ASCII characters."""
    out = []
    for i, c in enumerate(text):
        if c == " ":
            before = text[i - 1] if i > 0 else " "
            after = text[i + 1] if i + 1 < len(text) else " "
            if before.isascii() and before != " " and after.isascii() and after != " ":
                out.append(c)
        else:
            out.append(c)
    return "".join(out)


def _remove_bracket(text: str) -> str:
    for mark in ("（", "）", "【", "】", "`"):
        text = text.replace(mark, "")
    return text.replace("——", " ")


def normalize_chinese(text: str, wetext: WeText | None = None) -> str:
    text = wetext.zh(text) if wetext is not None else normalize_chinese_numbers(text)
    text = text.replace("\n", "")
    text = _replace_blank(text)
    text = text.replace("²", "平方").replace("³", "立方")
    text = text.replace(".", "。").replace(" - ", "，")
    text = _remove_bracket(text)
    return re.sub(r"[，,、]+$", "。", text)


# --- splitting --------------------------------------------------------------------------------


def split_paragraph(text: str, tokenize: Callable[[str], list[int]], chinese: bool) -> list[str]:
    """Upstream's split_paragraph (comma_split=False): pieces at stops, merged to 60-80 units."""

    def length(piece: str) -> int:
        return len(piece) if chinese else len(tokenize(piece))

    stops = _ZH_STOPS if chinese else _EN_STOPS
    if text[-1] not in stops:
        text += "。" if chinese else "."
    utts: list[str] = []
    start = 0
    for i, c in enumerate(text):
        if c in stops:
            if text[start:i]:
                utts.append(text[start:i] + c)
            if i + 1 < len(text) and text[i + 1] in ('"', "”"):
                utts[-1] += text[i + 1]
                start = i + 2
            else:
                start = i + 1
    final: list[str] = []
    current = ""
    for utt in utts:
        if length(current + utt) > TOKEN_MAX_N and length(current) > TOKEN_MIN_N:
            final.append(current)
            current = ""
        current += utt
    if current:
        if length(current) < MERGE_LEN and final:
            final[-1] += current
        else:
            final.append(current)
    return final


def normalize(text: str, tokenize: Callable[[str], list[int]], wetext: WeText | None = None) -> list[str]:
    """One input text -> the pieces the model speaks one after another.

    With ``wetext`` this is upstream's ``text_normalize``; without it, the built-in rules.
    """
    text = text.strip()
    if not text:
        return []
    chinese = contains_chinese(text)
    if chinese:
        text = normalize_chinese(text, wetext)
    elif wetext is not None:
        # Upstream's English path: the grammar, then spell_out_number on the digits it left.
        text = re.sub(r"\d+", lambda m: english_integer(m.group()), wetext.en(text))
    else:
        text = normalize_english(text)
    if not text:
        return []
    pieces = split_paragraph(text, tokenize, chinese)
    return [piece for piece in pieces if not is_only_punctuation(piece)]
