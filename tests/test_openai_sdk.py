"""The official openai SDK, pointed at the function, works unchanged."""

from __future__ import annotations

import openai
import pytest

from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer


@pytest.fixture(scope="module")
def client(server: FunctionServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="not-checked-by-the-function", max_retries=0)


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("mp3", "audio/mpeg"),
        ("wav", "audio/wav"),
        ("flac", "audio/flac"),
        ("opus", "audio/ogg; codecs=opus"),
        ("pcm", "audio/pcm"),
    ],
)
def test_speech_create_returns_audio(client: openai.OpenAI, fmt: str, content_type: str) -> None:
    response = client.audio.speech.create(
        model="tts-1", voice="alloy", input="Hello from an OpenAI client.", response_format=fmt
    )
    assert response.response.headers["content-type"] == content_type
    audio = decode(response.content, fmt, pcm_rate=24_000)
    assert_speech(audio, 24_000, min_s=1.0, max_s=6)


def test_speed_outside_the_engine_range_is_clamped_not_refused(client: openai.OpenAI) -> None:
    text = "Speed is clamped to what the engine supports."
    normal = decode(
        client.audio.speech.create(model="tts-1", voice="nova", input=text, response_format="wav").content
    )
    fastest = decode(
        client.audio.speech.create(
            model="tts-1", voice="nova", input=text, response_format="wav", speed=4.0
        ).content
    )
    assert fastest.duration_s < 0.7 * normal.duration_s


def test_errors_surface_as_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown_voice:
        client.audio.speech.create(model="tts-1", voice="darth", input="Hi.")
    assert "darth" in str(unknown_voice.value) and "alloy" in str(unknown_voice.value)
    with pytest.raises(openai.BadRequestError) as aac:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", response_format="aac")
    assert "response_format" in str(aac.value)
    with pytest.raises(openai.BadRequestError) as too_fast:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", speed=5)
    assert "speed" in str(too_fast.value)
    with pytest.raises(openai.BadRequestError) as empty:
        client.audio.speech.create(model="tts-1", voice="alloy", input="")
    assert "input" in str(empty.value)
