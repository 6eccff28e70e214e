"""The refusal battery: text an engine's voices cannot speak, and text with nothing to say, sent
to a real server over both HTTP routes and (where a bucket is given) as Pub/Sub events.

Each engine's test module calls these with the languages its deployment speaks. What must never
happen: a 200 with empty, silent or spelled-out audio, or a "succeeded" manifest.
"""

from __future__ import annotations

import requests

from tests.conftest import FunctionServer, ServerFactory
from tests.test_events import OUTPUT, Bucket, acknowledged, eventarc_pubsub

# Nothing speakable: emoji, invisible characters, punctuation, symbols, lone combining marks.
UNSPEAKABLE = {
    "emoji": "😀🎉👍",
    "zero-width": "\u200b\u200c\u2060\ufeff",
    "dashes": "----",
    "math": "∑∫√",
    "period": ".",
    "marks": "\u0301\u0308",
    "mixed": "… 🙂 —— ！",
}
# One sentence per language, with the base language the detector must name.
FOREIGN = {
    "zh": "今天天气很好，我们去公园散步吧。",
    "ja": "今日はいい天気ですね。公園に行きましょう。",
    "ko": "오늘은 날씨가 좋네요.",
    "ar": "الطقس جميل اليوم، لنذهب إلى الحديقة.",
    "hi": "आज मौसम अच्छा है, चलो पार्क चलते हैं।",
    "ru": "Сегодня хорошая погода, пойдём в парк.",
    "el": "Σήμερα ο καιρός είναι ωραίος.",
    "th": "วันนี้อากาศดี",
    # Same scripts as voices here, other languages: told apart by the language identifier.
    "yue": "佢哋今日去咗公園散步，好開心。",
    "fr": "Il fait beau aujourd'hui, allons au parc.",
    "de": "Heute ist schönes Wetter, lass uns in den Park gehen.",
    "es": "Hoy hace buen tiempo, vamos al parque.",
}


def synthesize(server: FunctionServer, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/synthesize", json=body, timeout=120)


def openai_speech(server: FunctionServer, text: str, voice: str = "alloy") -> requests.Response:
    body = {"model": "tts-1", "input": text, "voice": voice, "response_format": "wav"}
    return requests.post(f"{server.url}/v1/audio/speech", json=body, timeout=120)


def assert_refused(response: requests.Response, code: str, field: str, status: int = 400) -> dict:
    assert response.status_code == status, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["field"] == field, error
    return error


def assert_unspeakable_refused(server: FunctionServer) -> None:
    for name, text in UNSPEAKABLE.items():
        error = assert_refused(synthesize(server, {"text": text}), "no_speakable_text", "text")
        assert "nothing to say" in error["message"], name
        assert_refused(openai_speech(server, text), "no_speakable_text", "input")


def assert_foreign_refused(server: FunctionServer, speaks: set[str]) -> None:
    """Every sample language outside ``speaks`` is a 400 naming what was detected and what is spoken."""
    for language, text in FOREIGN.items():
        if language in speaks:
            continue
        for response, field in (
            (synthesize(server, {"text": text}), "text"),
            (openai_speech(server, text), "input"),
        ):
            error = assert_refused(response, "unsupported_language", field)
            assert error["detected"][0] == language, (language, error)
            # OpenAI's "alloy" stands for a voice per language: the refusal names no voice the
            # caller did not send (it once said "voice 'heart' speaks en-US").
            assert "voice '" not in error["message"], error
            assert set(error["supported"]) == speaks, error
            assert language in error["message"] and "This deployment speaks" in error["message"]


def assert_voice_refuses_other_language(server: FunctionServer, voice: str, text: str) -> None:
    """A voice named by the caller never reads a language it cannot."""
    error = assert_refused(synthesize(server, {"text": text, "voice": voice}), "unsupported_language", "text")
    assert voice in error["message"]


def start_event_server(start_server: ServerFactory, gcs: str, bucket: Bucket, **env: str) -> FunctionServer:
    """The event target writing to ``bucket`` through fake-gcs-server."""
    return start_server(
        target="synthesize_event",
        TTS_OUTPUT_URI=f"gs://{bucket.name}/{OUTPUT}",
        STORAGE_EMULATOR_HOST=gcs,
        **env,
    )


def assert_events_refused(server: FunctionServer, bucket: Bucket, speaks: set[str]) -> None:
    """Each refusal through Pub/Sub: acknowledged, a failed manifest with the code, no audio."""
    cases = [(text, "no_speakable_text") for text in UNSPEAKABLE.values()]
    cases += [(text, "unsupported_language") for lang, text in FOREIGN.items() if lang not in speaks]
    before = bucket.audio_names()
    for text, code in cases:
        delivery = eventarc_pubsub({"text": text})
        acknowledged(delivery.to(server))
        record = bucket.manifest(f"jobs/{delivery.event_id}.json")
        assert record["status"] == "failed" and "uri" not in record, record
        assert record["error"]["code"] == code and record["error"]["field"] == "text", (text, record)
    assert bucket.audio_names() == before
