"""Chinese text as a native speaker reads it aloud: Simplified characters, numbers in words.

Two libraries do the work: OpenCC turns Traditional text into Simplified phrase by phrase (so the
pinyin dictionaries, which are Simplified, see 銀行 as 银行 and read it yín háng), and
WeTextProcessing's Chinese grammar (the ``wetext`` runtime, compiled FSTs shipped in its wheel)
reads numbers: 两 before measure words, phone numbers and codes digit by digit with 幺, years,
dates, times, ranges, fractions, percentages, scores and units (5km -> 五公里).

The rules below cover only what that grammar gets wrong or leaves alone (checked against wetext
0.1.8; each has a test in tests/kokoro/test_zh_readings.py):

===============================  ==========================  ==============================
text                             wetext alone                here
===============================  ==========================  ==============================
``¥1,299.50``                    一元,两百九十九点五零         一千二百九十九元五角
``010-12345678``                 零一零一二三四五六七八         零幺零幺二三四五六七八
``-5℃`` ``-3.5°C``               负五摄氏度                   零下五摄氏度
``2倍`` ``2种`` ``下午2点``        二倍, 二种, 二点              两倍, 两种, 两点
``2月2日``                       二月两日                     二月二日
``房间1203`` ``1203室``          一千二百零三                 幺二零三
``航班CA1831`` ``G1234次``        CA一千八百三十一               CA幺八三幺
``公元前221年``                  两百二十一年                 二百二十一年
``10%-20%`` ``-3%``              百分之十百分之负二十, 百分之负三  百分之十到百分之二十, 负百分之三
``第2个``                        第两个                       第二个
``80㎡`` ``1000W`` ``3MB/s``      left as written              八十平方米, 一千瓦, 三MB每秒
``GPT-4o`` ``v1.2.3``            GPT负四o, v一.二点三          GPT 四o, v 一点二点三
``abc@qq.com`` ``www.x.cn/a``    left as written              A B C at Q Q 点 com, W W W 点 …
===============================  ==========================  ==============================

Text with Han characters comes here, and text without Latin letters given to a Mandarin voice
("12:30" alone); English sentences keep their digits for the English G2P, which reads them the
English way.
"""

from __future__ import annotations

import re
from typing import Any

import cn2an

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Full-width digits, Latin letters and number punctuation as ASCII, so the rules and the grammar
# see them ("３．１４", "２：３０", "ＧＰＴ").
_FULL_WIDTH = {
    code: code - 0xFEE0 for code in (*range(0xFF10, 0xFF1A), *range(0xFF21, 0xFF3B), *range(0xFF41, 0xFF5B))
}
_FULL_WIDTH.update({ord(wide): ascii_ for wide, ascii_ in zip("％＄￥＋～＠", "%$¥+~@", strict=True)})
_DIGIT_PUNCT = re.compile(r"(?<=\d)([．：－／])(?=\d)")
_DIGIT_PUNCT_ASCII = {"．": ".", "：": ":", "－": "-", "／": "/"}

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_URL = re.compile(r"(?:https?://|www\.)[A-Za-z0-9\-._~/?#=&%+:]*[A-Za-z0-9/]")
_URL_SYMBOLS = {".": " 点 ", "/": " 斜杠 ", "@": " at ", ":": " 冒号 ", "-": " 杠 ", "_": " 下划线 "}
_URL_SYMBOLS.update({"?": " 问号 ", "=": " 等于 ", "&": " and ", "#": " 井号 ", "%": " 百分号 ", "+": " 加 "})
# Phone numbers with their 1s as 幺 (the grammar says 一 when an area code or 400 comes first).
_PHONE = re.compile(r"(?<![\d.,-])(?:\d{3,4}-\d{3,4}-\d{4}|\d{3,4}-\d{7,8}|1[3-9]\d{9})(?![\d.,-])")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_MONEY = re.compile(r"([¥$€£])\s?(\d+)(?:\.(\d{1,2}))?\s?([万亿]?)(?:元)?")
_NEGATIVE_TEMPERATURE = re.compile(r"(?<![\d.])(?:零下\s?)?[-−]\s?(?=\d+(?:\.\d+)?\s?(?:℃|°C|℉|°F|°))")
# 2 counting something is 两. The grammar knows the common measure words (个, 只, 本, 斤, 公里);
# these it reads 二 (checked one by one on wetext 0.1.8). "2点" is two o'clock or two points, both
# 两; a decimal is "2.5", never "2点5"; 第2 and 2年级 are ordinals, 二.
_TWO = re.compile(
    r"(?<![\d.:第])2(?=\s?(?:倍|点|[GMKT]B?(?![A-Za-z])|种|类|项|部|台|份|间|门|所|句|排|批|组|届|轮"
    r"|次|遍|步|顿|声|眼|笔|栋|朵|包|节|章|年(?![级代])|星期|礼拜))"
)
_MONTH_DAY = re.compile(r"(?<![\d.])(\d{1,2})月(\d{1,2})([日号])")
_ROOM = re.compile(
    r"((?:房间|房号|门牌号|房间号|工号|学号|编号|尾号|单号|卡号|账号|车次|航班|邮编|验证码)(?:是|为)?)\s?(\d{3,})"
    r"|(?<![\d.])(\d{3,})(?=室|房(?!子|间|价))"
)
# Flight and train numbers (CA1831, G1234, D301): letters, then digits read one by one.
_FLIGHT = re.compile(r"(?<![A-Za-z\d])([A-Z]{1,2})\s?(\d{3,4})(?![\d.])")
_BC_YEAR = re.compile(r"(公元前?)(\d{1,3})(?=年)")
_NEGATIVE_PERCENT = re.compile(r"(?<![\d.])[-−](?=\d+(?:\.\d+)?%)")
_ORDINAL = re.compile(r"第(\d+)(?:\s*[-–~〜]\s*(\d+))?")
# Units the grammar leaves as letters; the ones it knows (km, kg, cm, ml, h, min, ms) it reads.
_UNITS = {
    "㎡": "平方米", "m²": "平方米", "m³": "立方米", "kW": "千瓦",
    "W": "瓦", "V": "伏", "mAh": "毫安时", "Hz": "赫兹",
}  # fmt: skip
_UNIT = re.compile(
    rf"(?<=\d)\s?({'|'.join(sorted(map(re.escape, _UNITS), key=len, reverse=True))})(?![A-Za-z])"
)
_PER_SECOND = re.compile(r"(?<=[A-Za-z])/s\b")
_PERCENT_RANGE = re.compile(r"(\d+(?:\.\d+)?)%\s*[-–~〜]\s*(?=\d+(?:\.\d+)?%)")
_LATIN_HYPHEN_DIGIT = re.compile(r"(?<=[A-Za-z])[-‐](?=\d)")
_VERSION = re.compile(r"(?<![\d.])([vV]?)(\d+(?:\.\d+){2,})(?![\d.])")
_DIGITS = re.compile(r"\d+")
_LATIN = re.compile(r"[A-Za-z]")

_CURRENCY_NAMES = {"¥": "元", "$": "美元", "€": "欧元", "£": "英镑"}
_DIGIT_NAMES = "零一二三四五六七八九"


def has_han(text: str) -> bool:
    return HAN.search(text) is not None


def is_chinese(text: str) -> bool:
    """Text a Mandarin voice reads the Chinese way: it has Han characters, or no Latin letters at
    all ("0.5", "12:30" alone are read 零点五, 十二点三十分)."""
    return has_han(text) or _LATIN.search(text) is None


def _cardinal(digits: str) -> str:
    return cn2an.an2cn(str(int(digits)))


def _digits(text: str, one: str = "一") -> str:
    """Digit by digit, as codes are read (幺 for 1 in phone, room and train numbers)."""
    return "".join(one if c == "1" else _DIGIT_NAMES[int(c)] for c in text if c.isdigit())


def _spell_address(m: re.Match[str]) -> str:
    """A URL or e-mail address as it is read out: letters as words (short runs spelled), digits one
    by one, each separator named; "www" is "W W W"."""
    out: list[str] = []
    for part in re.findall(r"[A-Za-z]+|\d+|.", m.group(0)):
        if part.isdigit():
            out.append(_digits(part))
        elif part.isalpha():
            # Short runs and runs without a vowel are not words (abc, qq, www): spell them.
            spell = len(part) <= 3 or not re.search(r"[aeiouAEIOU]", part)
            out.append(" ".join(part.upper()) if spell and part.lower() not in _URL_WORDS else part)
        else:
            out.append(_URL_SYMBOLS.get(part, " "))
    return " " + " ".join("".join(out).split()) + " "


# Parts of addresses that are read as words although they are short.
_URL_WORDS = frozenset({"com", "net", "org", "cn", "gov", "edu", "app", "web", "mail", "top"})


def _money(m: re.Match[str]) -> str:
    symbol, whole, cents, scale = m.groups()
    spoken = f"{_cardinal(whole)}{scale}{_CURRENCY_NAMES[symbol]}"
    if not cents or not int(cents):
        return spoken
    if symbol == "¥":  # 元角分, as prices are said
        jiao, fen = (int(c) for c in cents.ljust(2, "0"))
        spoken += f"{_DIGIT_NAMES[jiao]}角" if jiao else "零"
        return spoken + (f"{_DIGIT_NAMES[fen]}分" if fen else "")
    return f"{_cardinal(whole)}点{_digits(cents.rstrip('0'))}{scale}{_CURRENCY_NAMES[symbol]}"


def _month_day(m: re.Match[str]) -> str:
    month, day, suffix = int(m.group(1)), int(m.group(2)), m.group(3)
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return m.group(0)
    return f"{_cardinal(str(month))}月{_cardinal(str(day))}{suffix}"


def _room(m: re.Match[str]) -> str:
    if m.group(2):
        return f"{m.group(1)}{_digits(m.group(2), one='幺')}"
    return _digits(m.group(3), one="幺")


def _ordinal(m: re.Match[str]) -> str:
    last = f"到{_cardinal(m.group(2))}" if m.group(2) else ""
    return f"第{_cardinal(m.group(1))}{last}"


def _version(m: re.Match[str]) -> str:
    return f"{m.group(1)} " + "点".join(_cardinal(p) for p in m.group(2).split(".")) + " "


class ChineseNormalizer:
    """Traditional to Simplified, then numbers, symbols and addresses in words.

    Building it loads OpenCC's t2s tables (~10 ms). wetext's grammar is loaded on the first text
    with a digit: importing wetext reads every graph it ships (English, Japanese and inverse
    normalisation too; ~0.3 s on a quiet 2 vCPU AMD EPYC), which text without digits never needs.
    """

    def __init__(self) -> None:
        import opencc

        self._t2s: Any = opencc.OpenCC("t2s")
        self._grammar: Any = None

    def _tn(self, text: str) -> str:
        if self._grammar is None:
            from wetext import Normalizer

            self._grammar = Normalizer(lang="zh", operator="tn")
        return self._grammar.normalize(text)

    def __call__(self, text: str) -> str:
        text = text.translate(_FULL_WIDTH)
        text = _DIGIT_PUNCT.sub(lambda m: _DIGIT_PUNCT_ASCII[m.group(1)], text)
        text = self._t2s.convert(text)
        text = _EMAIL.sub(_spell_address, text)
        text = _URL.sub(_spell_address, text)
        text = _PHONE.sub(lambda m: _digits(m.group(0), one="幺"), text)
        text = _THOUSANDS.sub("", text)
        text = _MONEY.sub(_money, text)
        text = _NEGATIVE_TEMPERATURE.sub("零下", text)
        text = _TWO.sub("两", text)
        text = _MONTH_DAY.sub(_month_day, text)
        text = _ROOM.sub(_room, text)
        text = _FLIGHT.sub(lambda m: f"{m.group(1)}{_digits(m.group(2), one='幺')}", text)
        text = _BC_YEAR.sub(lambda m: m.group(1) + _cardinal(m.group(2)), text)
        text = _PERCENT_RANGE.sub(r"\1%到", text)
        text = _NEGATIVE_PERCENT.sub("负", text)
        text = _ORDINAL.sub(_ordinal, text)
        text = _UNIT.sub(lambda m: _UNITS[m.group(1)], text)
        text = _PER_SECOND.sub("每秒", text)
        text = _LATIN_HYPHEN_DIGIT.sub(" ", text)
        text = _VERSION.sub(_version, text)
        if re.search(r"\d", text):
            text = self._tn(text)
        # Whatever the grammar left (it should leave none), digit by digit rather than dropped.
        return _DIGITS.sub(lambda m: _digits(m.group(0)), text)
