"""Simplified Chinese, numbers already in words, to tone-numbered pinyin with a speaker's tone changes.

- Readings: pypinyin word by word on jieba's words (its phrase dictionary reads 银行 yín háng,
  长度 cháng dù; matching its phrases across jieba's words would read 人参加 as 人参 rén shēn),
  then the phrases below that its dictionary lacks, matched anywhere in the text, and 只 after a
  number (两只猫 zhī).
- Tone changes: misaki's copy of PaddleSpeech's ``ToneSandhi`` on jieba's words and POS tags
  (不 before a fourth tone, 一 before a fourth or other tone, third tone before third, neutral
  tones on particles, suffixes and reduplicated verbs), then the 一 of numbers, which it leaves
  alone: 一千 yì qiān, 一万 yí wàn, but 十一, 一九八四, 一点五 and 一月 keep yī.

The output is a list of ``Word``s: what is spoken and its syllables (none for punctuation and
anything that is not Han), which the front end turns into phonemes and the tests read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from misaki.tone_sandhi import ToneSandhi
from pypinyin import Style, lazy_pinyin

from function.engines.kokoro.dictionary import pos_cut
from function.engines.kokoro.normalize import HAN

# Phrases pypinyin 0.55 reads wrong, found by this project's reading tests (tests/kokoro/data/
# zh_readings_*.tsv); each is a phrase, never a lone character, so no other word changes. Applied
# here rather than loaded into pypinyin, whose dictionaries are process-wide.
PHRASES: dict[str, tuple[str, ...]] = {
    "数一数": ("shu3", "yi5", "shu3"),
    "还得": ("hai2", "dei3"),
    "得去": ("dei3", "qu4"),
    "选为": ("xuan3", "wei2"),
    "斜杠": ("xie2", "gang4"),
    "说得": ("shuo1", "de5"),
    "还钱": ("huan2", "qian2"),
    "长得": ("zhang3", "de5"),
    "得了": ("de2", "le5"),
    "看著": ("kan4", "zhe5"),
}
_PHRASE = re.compile("|".join(sorted(PHRASES, key=len, reverse=True)))
_HAN_RUN = re.compile(f"(?:{HAN.pattern})+")
_PRONOUN_ENDS = frozenset("我你他她它们咱您")
_GOT = frozenset("了到分奖罪病")
_NUMERALS = frozenset("零一二三四五六七八九十两幺")
_DIGIT_CHARS = frozenset("零一二三四五六七八九幺")  # not 两: 一两个 is "one or two", yì liǎng
# After these, 一 is a number's first digit before a larger unit: 一千 yì, 一万 yí.
_YI_BEFORE_UNIT = {"百": "4", "千": "4", "万": "2", "亿": "2"}
# 一 that names, not counts: January, the first (of a month), first floor, Monday.
_YI_NAMES = frozenset("月号楼")


@dataclass(frozen=True)
class Word:
    """A piece of the text and its tone-numbered syllables (empty when it is not Han)."""

    text: str
    pinyin: tuple[str, ...] = ()


class PinyinReader:
    """Reads Simplified Chinese text; built once per process (jieba's POS model, pypinyin), after
    ``dictionary.use`` has given jieba its words."""

    def __init__(self) -> None:
        self._sandhi = ToneSandhi()
        pos_cut("预热")  # loads jieba's HMM tables now, not on the first request

    def __call__(self, text: str) -> list[Word]:
        words: list[Word] = []
        position = 0
        for run in _HAN_RUN.finditer(text):
            if run.start() > position:
                words.append(Word(text[position : run.start()]))
            words.extend(self._han(run.group()))
            position = run.end()
        if position < len(text):
            words.append(Word(text[position:]))
        return words

    def _han(self, run: str) -> list[Word]:
        segments = pos_cut(run)
        readings = [r for word, _ in segments for r in _pinyin(word)]
        start = 0
        for word, pos in segments:
            after = run[start + 1 : start + 2]
            if word == "为" and (after in _NUMERALS or after in "负百千万"):  # "is" before a number
                readings[start] = "wei2"
            elif word == "长" and (pos == "a" or after in _NUMERALS):  # long, a length: cháng
                readings[start] = "chang2"
            start += len(word)
        fixed: set[int] = set()  # positions a phrase below sets: the sandhi leaves them alone
        for m in _PHRASE.finditer(run):
            readings[m.start() : m.end()] = PHRASES[m.group()]
            fixed.update(range(m.start(), m.end()))
        for i in range(1, len(run)):
            if run[i] == "只" and run[i - 1] in _NUMERALS:  # a measure word after a number: 两只 zhī
                readings[i] = "zhi1"
            elif run[i] == "得" and run[i - 1] in _PRONOUN_ENDS and i - 1 not in fixed:
                # After a pronoun 得 is no particle (a pronoun is no verb): "must" (我们得走 děi),
                # or "get" before what is got (他得了 dé).
                readings[i] = "de2" if run[i + 1 : i + 2] in _GOT else "dei3"
                fixed.add(i)
        words: list[Word] = []
        start = 0
        merged = self._sandhi.pre_merge_for_modify(segments)
        if "".join(word for word, _ in merged) != run:
            # PaddleSpeech's merge of 不 with the next word repeats a 不 that follows another
            # (不不援 -> 不不 + 不援): then the words as jieba cut them, unmerged.
            merged = segments
        for word, pos in merged:
            syllables = readings[start : start + len(word)]
            toned = self._sandhi.modified_tone(word, pos, list(syllables))
            for i, (char, syllable) in enumerate(zip(word, syllables, strict=True)):
                if start + i in fixed:
                    toned[i] = syllable
                elif char in "的地得" and toned[i].endswith("5"):
                    toned[i] = "de5"  # the particles, whatever pypinyin said (地 dì, 得 dé)
            start += len(word)
            words.append(Word(word, tuple(toned)))
        return _number_yi(words)


def _pinyin(word: str) -> list[str]:
    readings = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True)
    if len(readings) != len(word):  # one reading per Han character, to be sure
        readings = [lazy_pinyin(c, style=Style.TONE3, neutral_tone_with_five=True)[0] for c in word]
    # pypinyin gives 嗯 "n2" only when asked for finals; as a syllable it is "n2" too (misaki).
    return ["n2" if c == "嗯" else r for c, r in zip(word, readings, strict=True)]


def _number_yi(words: list[Word]) -> list[Word]:
    """一 in numbers and names, which the sandhi rules (word by word) cannot see."""
    chars = [c for w in words for c in w.text]
    syllables = [s for w in words for s in w.pinyin]
    if len(chars) != len(syllables):
        return words
    for i, char in enumerate(chars):
        if char != "一" or not syllables[i].startswith("yi"):
            continue
        before = chars[i - 1] if i else ""
        after = chars[i + 1] if i + 1 < len(chars) else ""
        after2 = chars[i + 2] if i + 2 < len(chars) else ""
        if after in _YI_BEFORE_UNIT and before not in _NUMERALS:
            syllables[i] = "yi" + _YI_BEFORE_UNIT[after]
        elif (
            before in _NUMERALS
            or after in _DIGIT_CHARS
            or (after in "点到比" and after2 in _NUMERALS)
            or (before == "比" and i > 1 and chars[i - 2] in _NUMERALS)
            or (after in _YI_NAMES and before != "第")
            or before in ("第", "期", "之", "月")
        ):
            syllables[i] = "yi1"
    out: list[Word] = []
    start = 0
    for word in words:
        out.append(Word(word.text, tuple(syllables[start : start + len(word.pinyin)])))
        start += len(word.pinyin)
    return out
