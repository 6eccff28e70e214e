"""The function end to end with TTS_ENGINES=cosyvoice on the tiny random model (real server, real audio).

The tiny model's weights are random, so its audio is noise-like, not speech; what is checked is
that the whole path works: decodable 22050 Hz audio of a plausible length with real energy.
"""

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

RATE = 22050


@pytest.fixture(scope="module")
def cosy_server(
    start_server: ServerFactory, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> FunctionServer:
    return start_server(
        TTS_ENGINES="cosyvoice",
        TTS_MODEL_DIR=str(tiny_model_dir),
        TTS_OUTPUT_URI=str(tmp_path_factory.mktemp("cosy-out")),
        TTS_THREADS="1",
    )


def test_voices_lists_the_sft_speakers_without_loading(cosy_server: FunctionServer) -> None:
    body = requests.get(f"{cosy_server.url}/voices", timeout=10).json()
    assert body["engines"] == ["cosyvoice"]
    by_id = {v["id"]: v for v in body["voices"]}
    assert set(by_id) == {"中文女", "中文男", "日语男", "粤语女", "英文女", "英文男", "韩语女"}
    assert by_id["英文男"]["aliases"] == ["en-male"] and by_id["英文男"]["sample_rate"] == RATE
    tables = body["openai_voices"]
    assert tables["en"]["alloy"] == "英文女" and tables["zh"]["alloy"] == "中文女"
    health = requests.get(f"{cosy_server.url}/healthz", timeout=10).json()
    engines = [{"name": "cosyvoice", "loaded": False}]
    assert health == {"status": "ok", "engines": engines, "model_loaded": False}


def test_synthesize_returns_22050_hz_audio(cosy_server: FunctionServer) -> None:
    response = requests.post(
        f"{cosy_server.url}/synthesize?response=audio",
        json={"text": "Hello there, this is a test.", "voice": "en-female"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert_speech(decode(response.content), RATE, min_s=0.3, max_s=30)


def test_openai_speech_route_returns_audio(cosy_server: FunctionServer) -> None:
    response = requests.post(
        f"{cosy_server.url}/v1/audio/speech",
        json={"model": "tts-1", "input": "你好，世界。", "voice": "onyx", "response_format": "wav"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert_speech(decode(response.content), RATE, min_s=0.1, max_s=30)


def test_refusals(cosy_server: FunctionServer) -> None:
    assert_unspeakable_refused(cosy_server)
    # The SFT speakers speak Mandarin, Cantonese, Japanese, Korean and English.
    assert_foreign_refused(cosy_server, speaks={"zh", "yue", "ja", "ko", "en"})
    assert_voice_refuses_other_language(cosy_server, "英文女", "今天天气很好。")


def test_events_record_refusals(start_server: ServerFactory, gcs: str, tiny_model_dir: Path) -> None:
    bucket = Bucket(gcs, "cosyvoice-refusals")
    server = start_event_server(
        start_server, gcs, bucket, TTS_ENGINES="cosyvoice", TTS_MODEL_DIR=str(tiny_model_dir), TTS_THREADS="1"
    )
    assert_events_refused(server, bucket, speaks={"zh", "yue", "ja", "ko", "en"})
