"""The Kokoro text front end on real text: Chinese normalisation, Mandarin and English phonemes,
mixed text, and the pieces that fit the model's context."""

from __future__ import annotations

import re

import pytest

from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.chunking import MAX_TOKENS, PIECE_TOKENS, fit_phonemes
from function.engines.kokoro.normalize import normalize_zh

MIXED = "我昨天买了一台 iPhone，价格是 5999 元。"
TONES = "→↗↓↘"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        (MIXED, "价格是 五千九百九十九 元"),
        ("价格是5999元", "价格是五千九百九十九元"),
        ("利润增长了50%。", "利润增长了百分之五十。"),
        ("增长12.5%", "增长百分之十二点五"),
        ("圆周率是3.14", "圆周率是三点一四"),
        ("2024年1月5日", "二零二四年一月五日"),
        ("日期2024-01-05", "日期二零二四年一月五日"),
        ("今天-5℃", "今天零下五摄氏度"),
        ("体温36.5°C", "体温三十六点五摄氏度"),
        ("下午2:30开会", "下午两点三十分开会"),
        ("早上8:05出发", "早上八点零五分出发"),
        ("售价¥5999", "售价五千九百九十九元"),
        ("只要$100", "只要一百美元"),
        ("共1,234,567人", "共一百二十三万四千五百六十七人"),
        ("电话13800138000", "电话幺三八零零幺三八零零零"),
        ("比分3:2", "比分三比二"),
        ("气温3-5℃", "气温三到五摄氏度"),
        ("ＧＰＴ-４o很强", "GPT 四o很强"),
    ],
)
def test_numbers_dates_money_and_temperatures_read_the_chinese_way(text: str, spoken: str) -> None:
    normalised = normalize_zh(text)
    assert spoken in normalised
    assert not re.search(r"\d", normalised)


def test_mandarin_phonemes_carry_tones(engine: KokoroEngine) -> None:
    phonemes = engine.phonemes("你好，世界！", "zf_xiaobei")
    # misaki's v1.0 reading: third tones (↓) on ni hao, fourth (↘) on shi jie, its punctuation kept.
    assert phonemes == "ni↓xau↓, ʂɨ↘ʨje↘!"
    long = engine.phonemes("今天天气很好，我们去公园散步吧。", "zm_yunxi")
    assert all(tone in long for tone in "→↓↘")
    assert not re.search(r"[\u4e00-\u9fff]", long)


def test_rare_characters_without_a_reading_are_skipped(engine: KokoroEngine) -> None:
    # pinyin_to_ipa raises on the pinyin pypinyin gives 兙; the rest of the sentence is still read.
    assert engine.phonemes("我有一兙。", "zf_xiaobei") == engine.phonemes("我有一。", "zf_xiaobei")


def test_english_inside_chinese_becomes_english_phonemes(engine: KokoroEngine) -> None:
    phonemes = engine.phonemes(MIXED, "zf_xiaobei")
    iphone = engine.phonemes("iPhone", "af_heart")
    assert iphone and iphone in phonemes  # hibari's American reading, not letters
    assert "iPhone" not in phonemes and "Phone" not in phonemes
    # 5999 in Mandarin: wu3 qian1 jiu3 bai3 jiu3 shi2 jiu3.
    assert "u↓ʨʰjɛ→n ʨjou↓pai↓ʨjou↓ʂɨ↗ʨjou↓" in phonemes
    assert any(tone in phonemes for tone in TONES)


def test_english_for_a_mandarin_voice_keeps_english_numbers(engine: KokoroEngine) -> None:
    text = "It costs 25 dollars."
    assert engine.pieces(text) == [text]  # no Han: no Chinese normalisation
    assert engine.phonemes(text, "zf_xiaobei") == engine.phonemes(text, "af_heart")
    assert "twˈɛnti fˈIv" in engine.phonemes(text, "zf_xiaobei")


def test_british_and_american_rules_differ(engine: KokoroEngine) -> None:
    american = engine.phonemes("Hello there, I want a tomato.", "af_heart")
    british = engine.phonemes("Hello there, I want a tomato.", "bf_emma")
    assert american != british
    assert "həlˈO" in american and "həlˈQ" in british


def test_pieces_split_sentences_including_chinese_punctuation(engine: KokoroEngine) -> None:
    pieces = engine.pieces("今天下雨了。你带伞了吗？没有！Then we wait. 好吧；走吧")
    assert pieces == ["今天下雨了。", "你带伞了吗？", "没有！", "Then we wait.", "好吧；", "走吧"]


def test_pieces_are_normalised_and_fit_the_context(engine: KokoroEngine) -> None:
    sentence = "他在2024年买了3台电脑，每台价格是5999元，" * 20 + "一共花了很多钱。"
    pieces = engine.pieces(sentence)
    assert len(pieces) > 1
    assert "".join(pieces) == normalize_zh(sentence)  # cut at clauses, nothing lost
    for piece in pieces:
        assert len(engine.phonemes(piece, "zf_xiaobei")) <= PIECE_TOKENS
    unpunctuated = "这是一个没有标点符号的很长的句子" * 30
    pieces = engine.pieces(unpunctuated)
    assert len(pieces) > 1 and "".join(pieces) == unpunctuated
    assert all(len(engine.phonemes(p, "zf_xiaobei")) <= PIECE_TOKENS for p in pieces)


def test_phoneme_chunks_fit_and_keep_every_phoneme() -> None:
    sentence = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps, ˈOvəɹ ðə lˈAzi dˈɔɡ. "
    tokens = (sentence * 40).strip()
    chunks = fit_phonemes(tokens)
    assert len(chunks) > 1 and all(len(c) <= MAX_TOKENS for c in chunks)
    assert "".join(chunks).replace(" ", "") == tokens.replace(" ", "")
    assert all(c.endswith(".") for c in chunks[:-1])  # cut at sentence ends first
    unbroken = "a" * 1200
    assert [len(c) for c in fit_phonemes(unbroken)] == [510, 510, 180]
