"""SSML through the default deployment (hibari) over HTTP and Pub/Sub: honoured where hibari can
(IPA phonemes, breaks, sub, say-as, rate), a 400 naming the engine and element where it cannot
(pinyin), hostile markup refused fast, and the OpenAI route ignoring it (jobs: test_ssml_jobs)."""

from __future__ import annotations

import time
import uuid

import numpy as np
import requests

from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory
from tests.test_events import OUTPUT, Bucket, acknowledged, event_env, eventarc_pubsub

RATE = 24_000
BOMB = (
    '<!DOCTYPE speak [<!ENTITY a "haha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><speak>&c;&c;&c;&c;&c;&c;</speak>'
)


def post(server: FunctionServer, body: dict[str, object]) -> requests.Response:
    return requests.post(f"{server.url}/synthesize?response=audio", json=body, timeout=120)


def test_hibari_speaks_ipa_and_the_other_elements(server: FunctionServer) -> None:
    plain = post(server, {"text": "I say tomato."})
    said = post(
        server,
        {
            "ssml": '<speak>I say <phoneme alphabet="ipa" ph="təˈmɑːtoʊ">tomato</phoneme>.<break time="1s"/>'
            '<prosody rate="slow"><say-as interpret-as="digits">42</say-as></prosody> '
            '<sub alias="World Wide Web">WWW</sub></speak>'
        },
    )
    assert plain.status_code == 200 and said.status_code == 200, said.text
    ours = decode(said.content)
    assert_speech(ours, RATE)
    assert not np.array_equal(
        decode(plain.content).samples, ours.samples[: len(decode(plain.content).samples)]
    )
    # The one-second break is in the audio: a stretch of silence at least that long.
    window = RATE // 100
    peaks = np.abs(ours.samples[: len(ours.samples) // window * window]).reshape(-1, window).max(axis=1)
    quiet = "".join("0" if p < 1e-3 else "1" for p in peaks)
    assert "0" * 100 in quiet


def test_hibari_refuses_pinyin_naming_itself(server: FunctionServer) -> None:
    response = post(
        server, {"ssml": '<speak><phoneme alphabet="pinyin" ph="ni3 hao3">hello</phoneme></speak>'}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (
        error["code"] == "unsupported_ssml" and error["engine"] == "hibari" and error["element"] == "phoneme"
    )


def test_hostile_markup_is_a_fast_400(server: FunctionServer) -> None:
    started = time.perf_counter()
    response = post(server, {"ssml": BOMB})
    assert response.status_code == 400 and time.perf_counter() - started < 2
    assert response.json()["error"]["element"] == "!DOCTYPE"
    tail = post(server, {"text": "<speak>hi <foo/></speak>", "text_type": "ssml"})
    assert tail.status_code == 400 and tail.json()["error"]["field"] == "text"
    assert "<foo>" in tail.json()["error"]["message"]


def test_the_openai_route_stays_plain(server: FunctionServer) -> None:
    # SSML on /jobs and events: tests/test_ssml_jobs.py.
    openai = requests.post(
        f"{server.url}/v1/audio/speech",
        json={
            "model": "tts-1",
            "input": "Plain words.",
            "voice": "alloy",
            "response_format": "wav",
            "ssml": "x",
        },
        timeout=60,
    )
    assert openai.status_code == 200


def test_a_pubsub_message_with_ssml_becomes_audio(start_server: ServerFactory, gcs: str) -> None:
    bucket = Bucket(gcs, "tts-ssml-events")  # its own: test_events' bucket fixture makes "tts-events"
    event_server = start_server(
        target="synthesize_event", **event_env(gcs, output=f"gs://{bucket.name}/{OUTPUT}")
    )
    name = f"ssml/{uuid.uuid4().hex}"
    ssml = '<speak>Events take <sub alias="S S M L">SSML</sub> too.<break time="500ms"/>Done.</speak>'
    acknowledged(eventarc_pubsub({"ssml": ssml, "output": name}).to(event_server))
    record = bucket.manifest(f"{name}.wav.json")
    assert record["status"] == "succeeded" and record["chars"] == len("Events take S S M L too.\nDone.")
    assert_speech(bucket.audio(f"{name}.wav"), RATE, min_s=2)


def test_hibari_reads_lang_en_gb_by_british_rules(server: FunctionServer) -> None:
    from function.document import Segment
    from function.engines.hibari import HibariEngine

    engine = HibariEngine()
    engine.load()
    tomato = Segment("tomato", 0, 6)
    assert "ɑː" in engine.segment_phonemes(tomato, "heart", "en-GB")
    assert "ɑː" not in engine.segment_phonemes(tomato, "heart", None)
    british = post(server, {"ssml": '<speak>I say <lang xml:lang="en-GB">tomato</lang></speak>'})
    american = post(server, {"ssml": '<speak>I say <lang xml:lang="en-US">tomato</lang></speak>'})
    assert british.status_code == american.status_code == 200
    assert british.content != american.content


def test_sentence_marks_of_ssml_point_into_the_markup(server: FunctionServer) -> None:
    ssml = (
        '<speak><s>Hello <sub alias="World Wide Web">WWW</sub>.</s><break time="700ms"/>'
        '<s>Say <phoneme ph="təˈmɑːtoʊ">tomato</phoneme>.</s></speak>'
    )
    response = requests.post(
        f"{server.url}/synthesize", json={"ssml": ssml, "marks": ["sentence"]}, timeout=120
    )
    assert response.status_code == 200, response.text
    marks = response.json()["marks"]
    assert [m["value"] for m in marks] == [
        'Hello <sub alias="World Wide Web">WWW</sub>.',
        'Say <phoneme ph="təˈmɑːtoʊ">tomato</phoneme>.',
    ]
    # The break is the silence between the two sentences, to the sample.
    assert marks[1]["start_sample"] - marks[0]["end_sample"] == round(0.7 * RATE)
