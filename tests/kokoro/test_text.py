"""The Kokoro text front end on real text: Chinese normalisation, Mandarin and English phonemes,
mixed text, and the pieces that fit the model's context."""

from __future__ import annotations

import re

from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.chunking import MAX_TOKENS, PIECE_TOKENS, fit_phonemes

MIXED = "我昨天买了一台 iPhone，价格是 5999 元。"
TONES = "→↗↓↘"


def test_mandarin_phonemes_carry_tones(engine: KokoroEngine) -> None:
    phonemes = engine.phonemes("你好，世界！", "zf_xiaobei")
    # ni hao with its third-tone sandhi (ni2 hao3: ↗ ↓), fourth tones (↘) on shi jie, misaki's
    # v1.0 phonemes and punctuation; the readings themselves are tested in test_zh_readings.py.
    assert phonemes == "ni↗xau↓, ʂɨ↘ʨje↘!"
    long = engine.phonemes("今天天气很好，我们去公园散步吧。", "zm_yunxi")
    assert all(tone in long for tone in "→↓↘")
    assert not re.search(r"[\u4e00-\u9fff]", long)


def test_rare_characters_without_a_reading_are_skipped(engine: KokoroEngine) -> None:
    # pinyin_to_ipa raises on the pinyin pypinyin gives 兙; the rest of the sentence is still read.
    # (jieba may cut the two texts into other words: compare the syllables, not the word spaces)
    with_rare = engine.phonemes("我有一兙。", "zf_xiaobei")
    assert with_rare.replace(" ", "") == engine.phonemes("我有一。", "zf_xiaobei").replace(" ", "")


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
    assert "".join(pieces) == engine._text_frontend().normalize(sentence)  # cut at clauses, nothing lost
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


def test_a_lone_letter_in_chinese_is_the_letter_not_the_article(engine: KokoroEngine) -> None:
    # hibari's G2P reads "A" alone as the article (ɐ); in A股 or 维生素A it is the letter's name.
    assert engine.phonemes("A", "af_heart") == "ɐ"
    for text in ("A股大涨", "多吃维生素A", "一张A4纸"):
        phonemes = engine.phonemes(text, "zf_xiaobei")
        assert "ˈA" in phonemes and "ɐ" not in phonemes, (text, phonemes)


def test_tone_marked_pinyin_is_read_as_written(engine: KokoroEngine) -> None:
    # The syllables as spelled, tones as marked (a caller writing pinyin chose them), punctuation
    # kept for its pauses; the same syllables as the characters' own, tones aside.
    assert engine.phonemes("Nǐ hǎo, shìjiè!", "zf_xiaobei") == "ni↓ xau↓, ʂɨ↘ʨje↘!"
    assert engine.phonemes("你好，世界！", "zf_xiaobei") == "ni↗xau↓, ʂɨ↘ʨje↘!"
