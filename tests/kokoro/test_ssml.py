"""SSML and lexicons through a real server with TTS_ENGINES=kokoro: each element is honoured,
checked on Kokoro's own phonemes (what the model is given) and on the audio (break silences,
rate by duration) and by an offline Whisper where what a listener hears is the claim; what an
engine cannot do is a 400 naming the engine and the element."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import requests
from pypinyin import lazy_pinyin

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
from loadtest import asr
from tests.audio_checks import assert_speech, decode, longest_silence_s
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


@pytest.mark.parametrize(
    ("text", "ssml", "voice", "said"),
    [
        # The surname 单 is shàn; the front end reads dān (the common word): tone numbers or marks.
        (
            "单田芳说书。",
            '<phoneme alphabet="pinyin" ph="shan4 tian2 fang1">单田芳</phoneme>说书。',
            "zf_xiaobei",
            "shan4",
        ),
        (
            "单田芳说书。",
            '<phoneme alphabet="pinyin" ph="shàn tián fāng">单田芳</phoneme>说书。',
            "zf_xiaobei",
            "shan4",
        ),
        (
            "Siobhan is here.",
            '<phoneme alphabet="ipa" ph="ʃɪˈvɔn">Siobhan</phoneme> is here.',
            "af_heart",
            "ʃɪˈvɔn",
        ),
    ],
)
def test_a_phoneme_fixes_a_misread_name(
    engines: tuple[Engines, Settings], text: str, ssml: str, voice: str, said: str
) -> None:
    expected = pinyin_phonemes([said]).strip() if said[-1].isdigit() else said
    wrong = spoken_phonemes(engines, text=text, voice=voice)
    fixed = spoken_phonemes(engines, ssml=f"<speak>{ssml}</speak>", voice=voice)
    assert expected in fixed and expected not in wrong
    if voice == "zf_xiaobei":
        dan = pinyin_phonemes(["dan1"]).strip()
        assert dan in wrong and dan not in fixed


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
        silences[ms] = longest_silence_s(samples, RATE)
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


# -- what a listener hears (an offline Whisper, loadtest/asr.py) -----------------------------------
# A pronunciation is heard as written, not as the characters under it; a lexicon entry changes what
# is heard in a Mandarin voice (单田芳: dān heard as 单, shàn as 善) and, as an alias, in an English
# voice. Whisper is no judge of how an English name is said: it writes "Siobhan" for the front
# end's "see-OB-han" (measured), so the English name is checked on Kokoro's phonemes above.


def heard(server: FunctionServer, language: str, body: dict[str, object]) -> str:
    response = requests.post(f"{server.url}/synthesize?response=audio", json=body, timeout=300)
    assert response.status_code == 200, response.text
    audio = decode(response.content)
    assert_speech(audio, 24_000)
    text = asr.transcribe(audio.samples, audio.sample_rate, language)
    print(f"{body} -> {text!r}")
    return text


def test_a_pinyin_phoneme_is_heard_as_written(ssml_server: FunctionServer) -> None:
    plain = heard(ssml_server, "zh", {"text": "我们明天去上海。", "voice": "zf_xiaobei"})
    marked = heard(
        ssml_server,
        "zh",
        {
            "ssml": '<speak>我们明天去<phoneme alphabet="pinyin" ph="bei3 jing1">上海</phoneme>。</speak>',
            "voice": "zf_xiaobei",
        },
    )
    assert "上海" in asr.normalize_chinese(plain)
    assert "bei jing" in " ".join(lazy_pinyin(asr.normalize_chinese(marked)))


def test_an_ipa_phoneme_is_heard_as_written(ssml_server: FunctionServer) -> None:
    said = '<speak>We flew to <phoneme alphabet="ipa" ph="ˈlʌndən">Paris</phoneme> today.</speak>'
    assert "london" in heard(ssml_server, "en", {"ssml": said, "voice": "af_heart"}).lower()


def test_a_lexicon_entry_is_heard_in_a_mandarin_voice(ssml_server: FunctionServer) -> None:
    body = {"text": "我很喜欢听单田芳的评书。", "voice": "zf_xiaobei"}
    without = lazy_pinyin(asr.normalize_chinese(heard(ssml_server, "zh", body)))
    fixed = lazy_pinyin(asr.normalize_chinese(heard(ssml_server, "zh", body | {"lexicons": ["names"]})))
    assert "dan" in without and "shan" not in without
    assert "shan" in fixed and "dan" not in fixed


def test_a_lexicon_alias_is_heard_in_an_english_voice(ssml_server: FunctionServer) -> None:
    body = {"text": "The W3C writes web standards.", "voice": "af_heart"}
    assert "world wide web" not in heard(ssml_server, "en", body).lower()
    assert "world wide web consortium" in heard(ssml_server, "en", body | {"lexicons": ["names"]}).lower()


def test_a_mandarin_ssml_job_keeps_its_break_and_a_later_parts_pinyin(
    start_server: ServerFactory,
    kokoro_dir: Path,
    engines: tuple[Engines, Settings],
    tmp_path: Path,
) -> None:
    from tests.jobs_fleet import wait_for_job

    # 60 s events at a budgeted 1 s a character: parts of at most 24 characters, one sentence each.
    env = {
        "TTS_ENGINES": "kokoro",
        "TTS_KOKORO_DIR": str(kokoro_dir),
        "TTS_OUTPUT_URI": str(tmp_path),
        "TTS_EVENT_TIMEOUT_S": "60",
        "TTS_SECONDS_PER_CHAR": "1.0",
    }
    parts = start_server("synthesize_event", **env)
    front = start_server(**env, TTS_JOBS_PUSH_URLS=parts.url)
    named = '我很喜欢听<phoneme alphabet="pinyin" ph="shan4 tian2 fang1">单田芳</phoneme>的评书。'
    ssml = f'<speak xml:lang="zh-CN"><s>今天下午我们去公园散步。</s><break time="1s"/><s>{named}</s></speak>'
    body = {"ssml": ssml, "voice": "zf_xiaobei", "marks": ["sentence"]}
    accepted = requests.post(f"{front.url}/jobs", json=body, timeout=60).json()
    assert accepted["parts"] == 2, accepted
    done = wait_for_job(front.url, accepted["job_id"], timeout_s=300)
    assert done["status"] == "succeeded", done
    marks = json.loads(Path(done["marks_uri"].removeprefix("file://")).read_text())["marks"]
    first, second = (m for m in marks if m["type"] == "sentence")
    assert second["value"] == named and ssml[second["start"] : second["end"]] == named
    # The break between the parts is the silence between their sentences, in the joined audio.
    audio = decode(Path(done["uri"].removeprefix("file://")).read_bytes()).samples
    assert second["start_sample"] - first["end_sample"] == RATE
    assert np.abs(audio[first["end_sample"] : second["start_sample"]]).max() < 1e-3
    # The later part is the sentence spoken alone (its address), and Kokoro is given shàn for 单.
    alone = f'<speak xml:lang="zh-CN">{named}</speak>'
    spoken = requests.post(
        f"{front.url}/synthesize", json={"ssml": alone, "voice": "zf_xiaobei", "format": "pcm"}, timeout=300
    )
    record = json.loads((tmp_path / "jobs" / accepted["job_id"] / "job.json").read_text())
    assert spoken.json()["object"] == record["part_objects"][1] and spoken.json()["cached"] is True
    assert pinyin_phonemes(["shan4"]).strip() in spoken_phonemes(engines, ssml=alone, voice="zf_xiaobei")
