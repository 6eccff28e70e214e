"""``<say-as>``: the text as a voice of a language should read it, written out so every engine's
own front end (number reader, normaliser) then reads it the way the caller asked.

Mandarin and English are written out here; for the rest the engine's normaliser does the work
(cardinal numbers, dates, times and money in the forms it knows), and a form that cannot be read
is a ValueError the caller sees as a 400.
"""

from __future__ import annotations

import re
from datetime import date

_EN_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_ZH_DIGITS = "零一二三四五六七八九"
# On the telephone 1 is yāo in Mandarin (never confused with 七).
_ZH_PHONE_DIGITS = "零幺二三四五六七八九"
_EN_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)*")
_INTEGER = re.compile(r"\d+")
_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_CURRENCY = re.compile(
    r"(?P<before>[$€£¥]|[A-Z]{3})?\s*(?P<amount>\d+(?:\.\d{1,2})?)\s*(?P<after>[A-Z]{3}|元)?"
)
# English: the symbol before the amount where the G2P reads it ("$12.50": twelve dollars and fifty
# cents), else the currency's name after it. Mandarin: the name after the amount (12.5美元).
_EN_SYMBOL = {"$": "$", "USD": "$", "€": "€", "EUR": "€", "£": "£", "GBP": "£"}
_EN_NAME = {"¥": "yuan", "CNY": "yuan", "RMB": "yuan", "元": "yuan", "JPY": "yen"}
_ZH_NAME = {"$": "美元", "USD": "美元", "€": "欧元", "EUR": "欧元", "£": "英镑", "GBP": "英镑", "¥": "元"}
_ZH_NAME |= {"CNY": "元", "RMB": "元", "元": "元", "JPY": "日元"}
_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd"}


def read_out(text: str, interpret_as: str, fmt: str | None, language: str) -> str:
    """``text`` written out for a voice of ``language`` (a base tag: "zh", "en", ...)."""
    text = text.strip()
    zh = language == "zh"
    if interpret_as in ("characters", "spell-out"):
        return " ".join(c for c in text if not c.isspace())
    if interpret_as == "digits":
        return _digits(text, _ZH_DIGITS if zh else None)
    if interpret_as == "telephone":
        groups = [g for g in re.split(r"[^0-9]+", text) if g]
        if not groups:
            raise ValueError(f"{text!r} has no digits to read as a telephone number")
        return ("，" if zh else ", ").join(_digits(g, _ZH_PHONE_DIGITS if zh else None) for g in groups)
    if interpret_as == "cardinal":
        return _checked(text, _NUMBER, "a number")
    if interpret_as == "ordinal":
        number = int(_checked(text, _INTEGER, "a whole number"))
        return f"第{number}" if zh else f"{number}{_ordinal_suffix(number)}"
    if interpret_as == "date":
        return _date(text, fmt, zh)
    if interpret_as == "time":
        match = _TIME.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is not a time such as 14:30 or 9:05:10")
        hours, minutes = int(match[1]), int(match[2])
        if zh:
            return f"{hours}点{minutes}分" if minutes else f"{hours}点"
        return (
            f"{hours} o'clock"
            if not minutes
            else f"{hours} {minutes:02d}"
            if minutes >= 10
            else f"{hours} oh {minutes}"
        )
    if interpret_as == "currency":
        return _currency(text, zh)
    raise ValueError(f"interpret-as={interpret_as!r} is not supported")


def _digits(text: str, names: str | None) -> str:
    digits = [c for c in text if c.isdigit()]
    if not digits or len(digits) != len([c for c in text if not c.isspace() and c not in "-+()."]):
        raise ValueError(f"{text!r} is not digits")
    if names is not None:
        return "".join(names[int(d)] for d in digits)
    return " ".join(_EN_DIGITS[int(d)] for d in digits)


def _checked(text: str, pattern: re.Pattern[str], what: str) -> str:
    if pattern.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not {what}")
    return text


def _ordinal_suffix(number: int) -> str:
    return "th" if 10 <= number % 100 <= 20 else _ORDINAL_SUFFIX.get(number % 10, "th")


def _date(text: str, fmt: str | None, zh: bool) -> str:
    """A date given as numbers (ISO 2024-03-05 by default; format="mdy" or "dmy" for others)."""
    parts = [int(p) for p in re.split(r"[-/.]", text) if p.isdigit()]
    order = (fmt or "ymd").lower()
    if len(parts) != 3 or sorted(order) != ["d", "m", "y"]:
        raise ValueError(f"{text!r} is not a date in the format {order!r} (three numbers, e.g. 2024-03-05)")
    values = dict(zip(order, parts, strict=True))
    try:
        day = date(values["y"], values["m"], values["d"])
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a date: {exc}") from None
    if zh:
        return f"{day.year}年{day.month}月{day.day}日"
    return f"{_EN_MONTHS[day.month - 1]} {day.day}{_ordinal_suffix(day.day)}, {day.year}"


def _currency(text: str, zh: bool) -> str:
    match = _CURRENCY.fullmatch(text)
    unit = (match["before"] or match["after"]) if match else None
    if match is None or unit not in _ZH_NAME:
        raise ValueError(f"{text!r} is not an amount with a currency ($12.50, 12 USD, ¥30, 30元)")
    amount = match["amount"]
    if zh:
        return f"{amount}{_ZH_NAME[unit]}"
    return f"{_EN_SYMBOL[unit]}{amount}" if unit in _EN_SYMBOL else f"{amount} {_EN_NAME[unit]}"
