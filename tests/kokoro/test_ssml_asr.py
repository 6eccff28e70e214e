"""What a listener hears when a caller fixes a reading: an offline Whisper (loadtest/asr.py)
transcribes the function's audio (real server, Kokoro) with and without the fix.

A pronunciation is heard as written, not as the characters under it (上海 said as bei3 jing1 is
heard as 北京; "Paris" said as /ˈlʌndən/ as "London"); a lexicon entry changes what is heard in a
Mandarin voice (单田芳: the surname 单 is shàn; the front end says dān, heard as 单 dān, and with
the lexicon as 善 shàn) and in an English voice (an alias). Whisper is no judge of how an English
name is said: it writes "Siobhan" for the front end's "see-OB-han" (measured), so the English
check is on Kokoro's phonemes (test_ssml.py) and, here, on an alias the listener hears as words.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from pypinyin import lazy_pinyin

from loadtest import asr
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory

LEXICONS = Path(__file__).parent.parent / "data" / "lexicons"


@pytest.fixture(scope="module")
def asr_server(
    start_server: ServerFactory, kokoro_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> FunctionServer:
    return start_server(
        TTS_ENGINES="kokoro",
        TTS_KOKORO_DIR=str(kokoro_dir),
        TTS_LEXICON_DIR=str(LEXICONS),
        TTS_OUTPUT_URI=str(tmp_path_factory.mktemp("ssml-asr-out")),
    )


def heard(server: FunctionServer, language: str, body: dict[str, object]) -> str:
    response = requests.post(f"{server.url}/synthesize?response=audio", json=body, timeout=300)
    assert response.status_code == 200, response.text
    audio = decode(response.content)
    assert_speech(audio, 24_000)
    text = asr.transcribe(audio.samples, audio.sample_rate, language)
    print(f"{body} -> {text!r}")
    return text


def test_a_pinyin_phoneme_is_heard_as_written(asr_server: FunctionServer) -> None:
    plain = heard(asr_server, "zh", {"text": "我们明天去上海。", "voice": "zf_xiaobei"})
    marked = heard(
        asr_server,
        "zh",
        {
            "ssml": '<speak>我们明天去<phoneme alphabet="pinyin" ph="bei3 jing1">上海</phoneme>。</speak>',
            "voice": "zf_xiaobei",
        },
    )
    assert "上海" in asr.normalize_chinese(plain)
    assert "bei jing" in " ".join(lazy_pinyin(asr.normalize_chinese(marked)))


def test_an_ipa_phoneme_is_heard_as_written(asr_server: FunctionServer) -> None:
    said = '<speak>We flew to <phoneme alphabet="ipa" ph="ˈlʌndən">Paris</phoneme> today.</speak>'
    assert "london" in heard(asr_server, "en", {"ssml": said, "voice": "af_heart"}).lower()


def test_a_lexicon_entry_is_heard_in_a_mandarin_voice(asr_server: FunctionServer) -> None:
    body = {"text": "我很喜欢听单田芳的评书。", "voice": "zf_xiaobei"}
    without = lazy_pinyin(asr.normalize_chinese(heard(asr_server, "zh", body)))
    fixed = lazy_pinyin(asr.normalize_chinese(heard(asr_server, "zh", body | {"lexicons": ["names"]})))
    assert "dan" in without and "shan" not in without
    assert "shan" in fixed and "dan" not in fixed


def test_a_lexicon_alias_is_heard_in_an_english_voice(asr_server: FunctionServer) -> None:
    body = {"text": "The W3C writes web standards.", "voice": "af_heart"}
    assert "world wide web" not in heard(asr_server, "en", body).lower()
    assert "world wide web consortium" in heard(asr_server, "en", body | {"lexicons": ["names"]}).lower()
