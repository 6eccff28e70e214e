"""Numbers spelled out in English (as inflect's ``number_to_words``) and in Chinese."""

from __future__ import annotations

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = ("", "thousand", "million", "billion", "trillion", "quadrillion", "quintillion")


def _below_hundred(n: int) -> str:
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")


def _below_thousand(n: int) -> str:
    hundreds, rest = divmod(n, 100)
    if not hundreds:
        return _below_hundred(rest)
    words = f"{_ONES[hundreds]} hundred"
    return f"{words} and {_below_hundred(rest)}" if rest else words


def english_integer(digits: str) -> str:
    """A run of ASCII digits in words, formatted as inflect's default ``number_to_words``."""
    n = int(digits)
    if n == 0:
        return "zero"
    groups: list[int] = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    if len(groups) > len(_SCALES):
        return " ".join(_ONES[int(d)] for d in digits)
    words = ""
    for scale in range(len(groups) - 1, -1, -1):
        group = groups[scale]
        if not group:
            continue
        part = _below_thousand(group)
        if _SCALES[scale]:
            part = f"{part} {_SCALES[scale]}"
        if not words:
            words = part
        elif scale == 0 and group < 100:
            # inflect joins a final group below a hundred with "and", others with a comma.
            words = f"{words} and {part}"
        else:
            words = f"{words}, {part}"
    return words


_ZH_DIGITS = "零一二三四五六七八九"
_ZH_UNITS = ("", "十", "百", "千")
_ZH_GROUPS = ("", "万", "亿", "万亿")


def chinese_digits(digits: str) -> str:
    """Digit by digit: years, phone numbers, decimals."""
    return "".join(_ZH_DIGITS[int(d)] for d in digits)


def _zh_below_10000(n: int) -> str:
    out = ""
    zero = False
    for position in range(3, -1, -1):
        digit = (n // 10**position) % 10
        if digit:
            if zero and out:
                out += "零"
            out += _ZH_DIGITS[digit] + _ZH_UNITS[position]
            zero = False
        else:
            zero = True
    return out


def chinese_integer(digits: str) -> str:
    """A run of ASCII digits as a Chinese numeral (12345 -> 一万二千三百四十五)."""
    n = int(digits)
    if n == 0:
        return "零"
    if n >= 10**16:
        return chinese_digits(digits)
    groups: list[int] = []
    while n:
        n, group = divmod(n, 10000)
        groups.append(group)
    out = ""
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if not group:
            continue
        if out and group < 1000:
            out += "零"
        out += _zh_below_10000(group) + _ZH_GROUPS[index]
    # 十二, not 一十二, when the number starts with the tens.
    return out[1:] if out.startswith("一十") else out
