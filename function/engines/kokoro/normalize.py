"""Chinese text normalisation: numbers, dates, times, money and temperatures read the Chinese way.

``cn2an.transform(text, "an2cn")`` (what misaki's v1.0 front end uses) reads plain numbers, years
before 年, decimals, fractions, percentages, ``3-5`` ranges and ``℃``. The rules here run first
and handle what it gets wrong or leaves raw (checked against cn2an 0.5.x):

========================  =======================  ==============================
text                      cn2an alone              here
========================  =======================  ==============================
``下午2:30``              二:三十                   两点三十分
``-5℃`` / ``-5°C``        -五摄氏度 / 负五°C        零下五摄氏度
``¥5999`` ``$100``        ¥五千九百九十九           五千九百九十九元, 一百美元
``2024-01-05``            二千零二十四负一负五       二零二四年一月五日
``1,234,567``             一,二百三十四,五百六十七   一百二十三万四千五百六十七
``13800138000`` ``007``   一百三十八亿… / 七         幺三八零零幺三八零零零 / 零零七
``GPT-4o`` ``3-5℃``       GPT负四o / 三负五摄氏度     GPT 四o / 三到五摄氏度
``比分3:2``               三:二                     三比二
========================  =======================  ==============================

Only text that contains Han characters comes here: English sentences keep their digits for the
English G2P, which reads them the English way.
"""

from __future__ import annotations

import contextlib
import re

import cn2an

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Full-width digits and Latin letters as ASCII, so the rules and cn2an see them.
_FULL_WIDTH = {
    code: code - 0xFEE0 for code in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))
}
_FULL_WIDTH.update({ord("％"): "%", ord("＄"): "$", ord("￥"): "¥", ord("＋"): "+", ord("～"): "~"})
# Full-width separators only count as number punctuation between digits ("３．１４", "２：３０").
_DIGIT_PUNCT = re.compile(r"(?<=\d)([．：－／])(?=\d)")
_DIGIT_PUNCT_ASCII = {"．": ".", "：": ":", "－": "-", "／": "/"}

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ISO_DATE = re.compile(r"(?<![\d.])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d.])")
_TIME = re.compile(r"(?<![\d:])(\d{1,2}):(\d{2})(?::(\d{2}))?(?![\d:])")
_RATIO = re.compile(r"(?<![\d:])(\d+):(\d+)(?![\d:])")
_TEMPERATURE = re.compile(r"(?:(?<![\d.])([-−])\s?)?(?<![\d.])(\d+(?:\.\d+)?)\s?(℃|°C|℉|°F|°)")
_CURRENCY = re.compile(r"([¥$€£])\s?(\d+(?:\.\d+)?)\s?([万亿千百]?)")
_PHONE = re.compile(r"(?<![\d.,])(?:\d{3,4}-\d{7,8}|\d{7,})(?![\d.,])")
_CODE = re.compile(r"(?<![\d.])0\d+(?![\d.])")
_LATIN_HYPHEN_DIGIT = re.compile(r"(?<=[A-Za-z])[-‐](?=\d)")
# Left after dates and phone numbers are gone: "3-5", "3~5", "3–5" are ranges (cn2an says 负 for some).
_RANGE = re.compile(r"(?<=\d)\s*[-–~〜]\s*(?=\d)")

_CURRENCY_NAMES = {"¥": "元", "$": "美元", "€": "欧元", "£": "英镑"}
_TEMPERATURE_NAMES = {"℃": "摄氏度", "°C": "摄氏度", "℉": "华氏度", "°F": "华氏度", "°": "度"}
_DIGIT_NAMES = "零一二三四五六七八九"


def has_han(text: str) -> bool:
    return HAN.search(text) is not None


def _integer(digits: str) -> str:
    return cn2an.an2cn(str(int(digits)))


def _digits(text: str, one: str = "一") -> str:
    """Digit by digit, as codes and phone numbers are read (幺 for 1 in phone numbers)."""
    return "".join(one if c == "1" else _DIGIT_NAMES[int(c)] for c in text if c.isdigit())


def _date(m: re.Match[str]) -> str:
    year, month, day = m.group(1), int(m.group(3)), int(m.group(4))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{year}年{month}月{day}日"  # cn2an then reads the year digit by digit


def _time(m: re.Match[str]) -> str:
    hour, minute, second = int(m.group(1)), int(m.group(2)), m.group(3)
    if hour > 24 or minute > 59 or (second is not None and int(second) > 59):
        return m.group(0)
    # "两点", not "二点": the counting form before a measure word.
    spoken = "两点" if hour == 2 else f"{_integer(str(hour))}点"
    seconds = int(second) if second is not None else 0
    if minute or seconds:
        spoken += f"{_sixty(minute)}分"
    if seconds:
        spoken += f"{_sixty(seconds)}秒"
    return spoken


def _sixty(value: int) -> str:
    """Minutes and seconds: 5 -> 零五, 30 -> 三十, 0 -> 零."""
    return "零" if value == 0 else ("零" if value < 10 else "") + _integer(str(value))


def _temperature(m: re.Match[str]) -> str:
    sign, number, unit = m.group(1), m.group(2), m.group(3)
    return f"{'零下' if sign else ''}{number}{_TEMPERATURE_NAMES[unit]}"


def _currency(m: re.Match[str]) -> str:
    symbol, number, scale = m.group(1), m.group(2), m.group(3)
    return f"{number}{scale}{_CURRENCY_NAMES[symbol]}"


def normalize_zh(text: str) -> str:
    """Chinese text with every Arabic number written out in Chinese characters."""
    text = text.translate(_FULL_WIDTH)
    text = _DIGIT_PUNCT.sub(lambda m: _DIGIT_PUNCT_ASCII[m.group(1)], text)
    # Phone numbers before thousands separators go: "1,234,567" is a number, "1234567" a phone.
    text = _PHONE.sub(lambda m: _digits(m.group(0), one="幺"), text)
    text = _THOUSANDS.sub("", text)
    text = _ISO_DATE.sub(_date, text)
    text = _TIME.sub(_time, text)
    text = _RATIO.sub(r"\1比\2", text)
    text = _TEMPERATURE.sub(_temperature, text)
    text = _CURRENCY.sub(_currency, text)
    text = _CODE.sub(lambda m: _digits(m.group(0)), text)
    text = _LATIN_HYPHEN_DIGIT.sub(" ", text)
    text = _RANGE.sub("到", text)
    # cn2an rejects a few malformed numbers: then the digits are read one by one below.
    with contextlib.suppress(ValueError, KeyError, IndexError):
        text = cn2an.transform(text, "an2cn")
    # Whatever cn2an left (it should leave none), digit by digit rather than dropped.
    return re.sub(r"\d+", lambda m: _digits(m.group(0)), text)
