"""The function end to end with TTS_ENGINES=kokoro (real server, real int8 model): it speaks
Mandarin and English, and refuses every other language and text with nothing to say."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory
from tests.refusals import (
    assert_events_refused,
    assert_foreign_refused,
    assert_unspeakable_refused,
    assert_voice_refuses_other_language,
    start_event_server,
)
from tests.test_events import Bucket

RATE = 24_000


@pytest.fixture(scope="module")
def kokoro_server(
    start_server: ServerFactory, kokoro_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> FunctionServer:
    return start_server(
        TTS_ENGINES="kokoro",
        TTS_KOKORO_DIR=str(kokoro_dir),
        TTS_OUTPUT_URI=str(tmp_path_factory.mktemp("kokoro-out")),
    )


def test_voices_and_health_without_loading(kokoro_server: FunctionServer) -> None:
    body = requests.get(f"{kokoro_server.url}/voices", timeout=10).json()
    assert body["engines"] == ["kokoro"] and body["languages"] == ["en-GB", "en-US", "zh-CN"]
    by_id = {v["id"]: v for v in body["voices"]}
    assert by_id["zf_xiaobei"]["also_reads"] == ["en"] and by_id["af_heart"]["also_reads"] == []
    assert body["openai_voices"]["zh"]["alloy"].startswith("z")
    assert body["openai_voices"]["en"]["alloy"][:2] in ("af", "am", "bf", "bm")
    health = requests.get(f"{kokoro_server.url}/healthz", timeout=10).json()
    assert health["engines"] == [{"name": "kokoro", "loaded": False}]


def test_chinese_and_english_text_pick_their_voices(kokoro_server: FunctionServer) -> None:
    for text, language in (("今天天气很好。", "zh-CN"), ("The weather is nice today.", "en-US")):
        response = requests.post(f"{kokoro_server.url}/synthesize", json={"text": text}, timeout=120)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["engine"] == "kokoro" and body["language"] == language and body["duration_s"] > 0.5


def test_mixed_text_is_one_utterance_by_a_mandarin_voice(kokoro_server: FunctionServer) -> None:
    response = requests.post(
        f"{kokoro_server.url}/synthesize?response=audio",
        json={"text": "我昨天买了一台 iPhone，价格是 5999 元。"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert_speech(decode(response.content), RATE, min_s=2.0, max_s=12)


def test_language_edges_are_honest(kokoro_server: FunctionServer) -> None:
    """A stray kana does not refuse a Chinese sentence; tone-marked pinyin is read by a Mandarin
    voice; Cantonese and French, which no voice here reads, are refused naming what they are."""
    for text in ("这家店叫做好吃の店。", "Nǐ hǎo, shìjiè!"):
        response = requests.post(f"{kokoro_server.url}/synthesize", json={"text": text}, timeout=120)
        assert response.status_code == 200, response.text
        assert response.json()["language"] == "zh-CN" and response.json()["duration_s"] > 0.5, text
    for text, detected in (("佢哋係唔係學生？", "yue"), ("Bonjour, comment allez-vous aujourd'hui ?", "fr")):
        response = requests.post(f"{kokoro_server.url}/synthesize", json={"text": text}, timeout=120)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "unsupported_language" and error["detected"] == [detected], error


def test_refusals(kokoro_server: FunctionServer) -> None:
    assert_unspeakable_refused(kokoro_server)
    assert_foreign_refused(kokoro_server, speaks={"zh", "en"})
    assert_voice_refuses_other_language(kokoro_server, "af_heart", "今天天气很好。")


def test_events_record_refusals(start_server: ServerFactory, gcs: str, kokoro_dir: Path) -> None:
    bucket = Bucket(gcs, "kokoro-refusals")
    server = start_event_server(
        start_server, gcs, bucket, TTS_ENGINES="kokoro", TTS_KOKORO_DIR=str(kokoro_dir)
    )
    assert_events_refused(server, bucket, speaks={"zh", "en"})
