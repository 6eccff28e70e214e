"""SSML and lexicons through a real server with TTS_ENGINES=kokoro: each element is honoured,
checked on Kokoro's own phonemes (what the model is given) and on the audio (break silences,
rate by duration); what an engine cannot do is a 400 naming the engine and the element."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests

from function import pipeline
from function.config import Settings
from function.engines.base import Voice
from function.engines.cosyvoice import CosyVoiceEngine
from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.frontend import pinyin_phonemes
from function.errors import ApiError
from function.phonetics import misaki_ipa
from function.registry import Engines
from function.schema import SynthesizeRequest
from function.speaking import prepare
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory

RATE = 24_000
LEXICONS = Path(__file__).parent.parent / "data" / "lexicons"


@pytest.fixture(scope="module")
def ssml_server(
    start_server: ServerFactory, kokoro_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> FunctionServer:
    return start_server(
        TTS_ENGINES="kokoro",
        TTS_KOKORO_DIR=str(kokoro_dir),
        TTS_LEXICON_DIR=str(LEXICONS),
        TTS_OUTPUT_URI=str(tmp_path_factory.mktemp("ssml-out")),
    )


@pytest.fixture(scope="module")
def engines(engine: KokoroEngine, kokoro_dir: Path) -> tuple[Engines, Settings]:
    """The loaded engine behind the registry, so plans are checked against the real front end."""
    settings = Settings(engines="kokoro", kokoro_dir=kokoro_dir, lexicon_dir=LEXICONS)
    registry = Engines(settings)
    registry._built["kokoro"] = engine
    return registry, settings


def spoken_phonemes(engines: tuple[Engines, Settings], **request: object) -> str:
    """The phonemes Kokoro is given for each utterance of the request, joined."""
    registry, settings = engines
    plan = pipeline.plan(
        SynthesizeRequest.model_validate(request), registry, settings, max_chars=4096, timeout_s=300
    )
    engine = plan.engine
    if plan.document is None:
        return engine.phonemes(plan.text, plan.voice.id)  # type: ignore[attr-defined]
    return " | ".join(
        " ".join(engine.segment_phonemes(s, plan.voice.id, u.lang) for s in u.segments)
        for u in plan.document.utterances
    )


def post_audio(server: FunctionServer, body: dict[str, object]) -> np.ndarray:
    response = requests.post(f"{server.url}/synthesize?response=audio", json=body, timeout=300)
    assert response.status_code == 200, response.text
    audio = decode(response.content)
    assert_speech(audio, RATE)
    return audio.samples


def longest_silence_s(samples: np.ndarray, threshold: float = 1e-3) -> float:
    """The longest run of 10 ms windows whose peak stays under ``threshold``, in seconds."""
    window = RATE // 100
    peaks = np.abs(samples[: len(samples) // window * window]).reshape(-1, window).max(axis=1)
    longest = current = 0
    for quiet in peaks < threshold:
        current = current + 1 if quiet else 0
        longest = max(longest, current)
    return longest / 100


def test_pinyin_phoneme_fixes_a_misread_name(engines: tuple[Engines, Settings]) -> None:
    # The surname 单 is shàn; the front end reads dān (the common word).
    wrong = spoken_phonemes(engines, text="单田芳说书。", voice="zf_xiaobei")
    fixed = spoken_phonemes(
        engines,
        ssml='<speak><phoneme alphabet="pinyin" ph="shan4 tian2 fang1">单田芳</phoneme>说书。</speak>',
        voice="zf_xiaobei",
    )
    shan, dan = pinyin_phonemes(["shan4"]).strip(), pinyin_phonemes(["dan1"]).strip()
    assert dan in wrong and shan not in wrong
    assert shan in fixed and dan not in fixed
    marked = spoken_phonemes(
        engines,
        ssml='<speak><phoneme alphabet="pinyin" ph="shàn tián fāng">单田芳</phoneme></speak>',
        voice="zf_xiaobei",
    )
    assert shan in marked


def test_ipa_phoneme_in_an_english_voice(engines: tuple[Engines, Settings]) -> None:
    wrong = spoken_phonemes(engines, text="Siobhan is here.", voice="af_heart")
    fixed = spoken_phonemes(
        engines,
        ssml='<speak><phoneme alphabet="ipa" ph="ʃɪˈvɔn">Siobhan</phoneme> is here.</speak>',
        voice="af_heart",
    )
    assert "ʃɪˈvɔn" in fixed and "ʃɪˈvɔn" not in wrong


def test_a_lexicon_fixes_a_word_in_mandarin_and_english_voices(
    engines: tuple[Engines, Settings], ssml_server: FunctionServer
) -> None:
    shan = pinyin_phonemes(["shan4"]).strip()
    assert shan not in spoken_phonemes(engines, text="我喜欢单田芳。", voice="zf_xiaobei")
    assert shan in spoken_phonemes(engines, text="我喜欢单田芳。", voice="zf_xiaobei", lexicons=["names"])
    assert "ʃɪˈvɔn" not in spoken_phonemes(engines, text="I met Siobhan.", voice="af_heart")
    assert "ʃɪˈvɔn" in spoken_phonemes(engines, text="I met Siobhan.", voice="af_heart", lexicons=["names"])
    # An alias is read as its words.
    assert spoken_phonemes(engines, text="W3C", voice="af_heart", lexicons=["names"]) == spoken_phonemes(
        engines, text="World Wide Web Consortium", voice="af_heart"
    )
    for text, voice in (("我喜欢单田芳。", "zf_xiaobei"), ("I met Siobhan.", "af_heart")):
        plain = post_audio(ssml_server, {"text": text, "voice": voice})
        fixed = post_audio(ssml_server, {"text": text, "voice": voice, "lexicons": ["names"]})
        assert not np.array_equal(plain, fixed)
    response = requests.post(
        f"{ssml_server.url}/synthesize", json={"text": "hi", "lexicons": ["nope"]}, timeout=30
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_lexicon"


def test_say_as_and_sub_are_read_through_the_front_end(engines: tuple[Engines, Settings]) -> None:
    telephone = spoken_phonemes(
        engines, ssml='<speak>电话<say-as interpret-as="telephone">110</say-as></speak>', voice="zf_xiaobei"
    )
    assert telephone == spoken_phonemes(engines, text="电话幺幺零", voice="zf_xiaobei")
    digits = spoken_phonemes(
        engines, ssml='<speak><say-as interpret-as="digits">2024</say-as></speak>', voice="af_heart"
    )
    assert digits == spoken_phonemes(engines, text="two zero two four", voice="af_heart")
    sub = spoken_phonemes(
        engines, ssml='<speak><sub alias="World Wide Web">WWW</sub></speak>', voice="af_heart"
    )
    assert sub == spoken_phonemes(engines, text="World Wide Web", voice="af_heart")


def test_lang_picks_the_reading_rules(engines: tuple[Engines, Settings]) -> None:
    british = spoken_phonemes(
        engines, ssml='<speak>我说<lang xml:lang="en-GB">tomato</lang></speak>', voice="zf_xiaobei"
    )
    american = spoken_phonemes(
        engines, ssml='<speak>我说<lang xml:lang="en-US">tomato</lang></speak>', voice="zf_xiaobei"
    )
    assert british != american and "ɑː" in british
    with pytest.raises(ApiError) as caught:
        spoken_phonemes(engines, ssml='<speak><lang xml:lang="zh-CN">你好</lang></speak>', voice="af_heart")
    assert caught.value.code in ("unsupported_ssml", "unsupported_language")


def test_break_lengths_are_the_silence_in_the_audio(ssml_server: FunctionServer) -> None:
    silences = {}
    for ms in (300, 1500):
        samples = post_audio(
            ssml_server, {"ssml": f'<speak><s>第一句。</s><break time="{ms}ms"/><s>第二句。</s></speak>'}
        )
        silences[ms] = longest_silence_s(samples)
    # Each side keeps Kokoro's 50 ms edge margin (and a little of its own quiet) around the break.
    assert 1.1 <= silences[1500] - silences[300] <= 1.3, silences
    assert 0.3 <= silences[300] <= 0.6, silences


def test_prosody_rate_changes_the_duration(ssml_server: FunctionServer) -> None:
    sentence = "今天天气很好，我们去公园散步。"
    normal = post_audio(ssml_server, {"ssml": f"<speak>{sentence}</speak>"})
    slow = post_audio(ssml_server, {"ssml": f'<speak><prosody rate="x-slow">{sentence}</prosody></speak>'})
    fast = post_audio(ssml_server, {"ssml": f'<speak><prosody rate="150%">{sentence}</prosody></speak>'})
    assert len(slow) / len(normal) > 1.6 and len(fast) / len(normal) < 0.8


def test_ssml_in_text_with_text_type_and_streamed(ssml_server: FunctionServer) -> None:
    ssml = '<speak>你好<break time="200ms"/>世界。</speak>'
    as_field = post_audio(ssml_server, {"ssml": ssml})
    as_text = post_audio(ssml_server, {"text": ssml, "text_type": "ssml"})
    assert np.array_equal(as_field, as_text)
    streamed = requests.post(
        f"{ssml_server.url}/synthesize?response=audio",
        json={"ssml": ssml, "stream": True, "format": "pcm"},
        timeout=120,
    )
    assert streamed.status_code == 200 and len(streamed.content) > RATE


def test_refusals_are_400s_naming_the_element(ssml_server: FunctionServer) -> None:
    cases = {
        '<speak><phoneme alphabet="pinyin" ph="ni3">hi</phoneme></speak>': (
            "unsupported_ssml",
            "phoneme",
            "af_heart",
        ),
        '<speak><phoneme ph="☃">hi</phoneme></speak>': ("unsupported_ssml", "phoneme", "af_heart"),
        "<speak>hi <emphasis>there</emphasis></speak>": ("invalid_ssml", "emphasis", None),
        '<speak><say-as interpret-as="date">yesterday</say-as></speak>': ("unsupported_ssml", "say-as", None),
    }
    for ssml, (code, element, voice) in cases.items():
        body: dict[str, object] = {"ssml": ssml} | ({"voice": voice} if voice else {})
        response = requests.post(f"{ssml_server.url}/synthesize", json=body, timeout=30)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["element"] == element and f"<{element}>" in error["message"]
    both = requests.post(
        f"{ssml_server.url}/synthesize", json={"ssml": "<speak>a</speak>", "text": "b"}, timeout=30
    )
    assert both.status_code == 400 and both.json()["error"]["field"] == "ssml"


def test_cosyvoice_refuses_phonemes_and_honours_the_rest(tmp_path: Path) -> None:
    from function.ssml import parse

    engine = CosyVoiceEngine(tmp_path)  # refusals need no weights
    voice = Voice("中文女", "zh-CN", also_reads=("en",))
    document = parse(
        '<speak>住在<phoneme alphabet="pinyin" ph="chong2 qing4">重庆</phoneme></speak>',
        max_bytes=4096,
        max_chars=100,
    )
    with pytest.raises(ApiError) as caught:
        prepare(engine, document, voice, 1.0)
    assert (
        caught.value.body()["error"]["engine"] == "cosyvoice"
        and "none: it reads characters" in caught.value.message
    )
    kept = parse(
        '<speak><sub alias="世界">W</sub><break/><say-as interpret-as="digits">12</say-as></speak>',
        max_bytes=4096,
        max_chars=100,
    )
    assert prepare(engine, kept, voice, 1.0).text == "世界\n一二"


def test_misaki_ipa_maps_dictionary_ipa() -> None:
    assert misaki_ipa("təˈmeɪtoʊ") == "təˈmAtO"
