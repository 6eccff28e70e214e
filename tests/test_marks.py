"""Speech marks and subtitles on hibari, end to end: real servers over HTTP (sync, audio, SSE and
raw streams), events, jobs; the marks checked against the samples each piece is spoken in (the
engine run here, in-process, gives the same deterministic samples), the subtitles read back by
real parsers (webvtt-py, srt)."""

from __future__ import annotations

import base64
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import requests
import srt
import webvtt

from function.engines.hibari import HibariEngine
from function.marks import Locator
from function.subtitles import MAX_CUE_CHARS, cues
from tests.audio_checks import decode
from tests.conftest import FunctionServer, ServerFactory
from tests.jobs_fleet import Receiver, document, wait_for_job
from tests.test_events import acknowledged, eventarc_pubsub
from tests.test_jobs import fleet, front, out  # noqa: F401

RATE = 24_000
PAUSE = round(0.2 * RATE)  # TTS_SENTENCE_PAUSE_MS's default, between pieces
TEXT = "The  quick brown fox jumps over the lazy dog. It was not amused! Was it fun? Never."


@pytest.fixture(scope="module")
def hibari() -> HibariEngine:
    engine = HibariEngine()
    engine.load()
    return engine


def expected_sentences(engine: HibariEngine, text: str, voice: str = "heart") -> list[tuple[int, int]]:
    """Each piece's first and one-past-last sample in the joined audio, from the engine itself."""
    bounds, position = [], 0
    for index, piece in enumerate(engine.pieces(" ".join(text.split()))):
        position += PAUSE if index else 0
        length = len(engine.synthesize(piece, voice, 1.0))
        bounds.append((position, position + length))
        position += length
    return bounds


def synthesize(server: FunctionServer, **body: object) -> requests.Response:
    return requests.post(f"{server.url}/synthesize", json=body, timeout=120)


def local(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def test_sentence_marks_are_the_samples_each_piece_was_spoken_in(
    server: FunctionServer, hibari: HibariEngine
) -> None:
    response = synthesize(server, text=TEXT, marks=["sentence"], subtitles="vtt")
    assert response.status_code == 200, response.text
    body = response.json()
    marks = body["marks"]
    assert [m["type"] for m in marks] == ["sentence"] * 4
    assert [(m["start_sample"], m["end_sample"]) for m in marks] == expected_sentences(hibari, TEXT)
    wav = decode(local(body["uri"]).read_bytes())
    assert marks[-1]["end_sample"] == len(wav.samples)  # the last sentence ends the audio
    for mark in marks:
        assert mark["start_s"] == round(mark["start_sample"] / RATE, 6)
        assert mark["value"] == TEXT[mark["start"] : mark["end"]]
    assert [m["value"] for m in marks] == [
        "The  quick brown fox jumps over the lazy dog.",  # the caller's blanks, as sent
        "It was not amused!",
        "Was it fun?",
        "Never.",
    ]
    # Between two sentences: the pause, silent.
    gap = wav.samples[marks[0]["end_sample"] : marks[1]["start_sample"]]
    assert len(gap) == PAUSE and np.abs(gap).max() == 0
    stored = json.loads(local(body["marks_uri"]).read_text())
    assert stored["marks"] == marks and stored["samples"] == len(wav.samples)
    assert body["marks_uri"] == body["uri"] + ".marks.json"


def test_subtitles_parse_back_with_the_sentences_and_their_times(server: FunctionServer) -> None:
    for fmt in ("vtt", "srt"):
        body = synthesize(server, text=TEXT, subtitles=fmt).json()
        assert "marks" not in body  # subtitles alone: no marks in the body, the object is stored
        marks = json.loads(local(body["marks_uri"]).read_text())["marks"]
        text = local(body["subtitles_uri"]).read_text()
        assert body["subtitles_uri"] == f"{body['uri']}.{fmt}"
        if fmt == "vtt":
            parsed = [
                (c.start_time.in_milliseconds() / 1000, c.text) for c in webvtt.from_buffer(io.StringIO(text))
            ]
        else:
            parsed = [(c.start.total_seconds(), c.content) for c in srt.parse(text)]
        assert [t for _, t in parsed] == [" ".join(m["value"].split()) for m in marks]
        assert [s for s, _ in parsed] == pytest.approx([m["start_s"] for m in marks], abs=0.0011)


def test_an_audio_response_names_its_marks_and_a_cache_hit_gives_the_same(server: FunctionServer) -> None:
    text = "Cache me once. Then twice."
    first = requests.post(
        f"{server.url}/synthesize?response=audio", json={"text": text, "marks": ["sentence"]}, timeout=120
    )
    assert first.status_code == 200 and first.headers["Content-Type"].startswith("audio/")
    marks_path = local(first.headers["X-Marks-Uri"])
    stored = marks_path.read_bytes()
    assert json.loads(stored)["marks"][1]["value"] == "Then twice."
    again = synthesize(server, text=text, marks=["sentence"]).json()
    assert again["cached"] is True and again["marks"] == json.loads(stored)["marks"]
    assert marks_path.read_bytes() == stored and marks_path.stat().st_nlink == 1  # write-once


def test_audio_stored_without_marks_gets_them_later_and_stays_the_same(server: FunctionServer) -> None:
    text = "First without marks. Then with them."
    plain = synthesize(server, text=text).json()
    audio = local(plain["uri"]).read_bytes()
    assert "marks_uri" not in plain and not Path(f"{local(plain['uri'])}.marks.json").exists()
    marked = synthesize(server, text=text, marks=["sentence"]).json()
    assert marked["uri"] == plain["uri"] and marked["cached"] is True
    assert local(marked["uri"]).read_bytes() == audio  # the same object, untouched
    assert marked["marks"][-1]["end_sample"] == len(decode(audio).samples)


def test_word_marks_from_hibari_are_a_400_naming_the_engine(server: FunctionServer) -> None:
    response = synthesize(server, text=TEXT, marks=["sentence", "word"])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "marks" and "hibari" in error["message"] and error["code"] == "unsupported_marks"
    for bad in ({"marks": []}, {"marks": ["phoneme"]}, {"subtitles": "ass"}, {"marks": "sentence"}):
        refused = synthesize(server, text=TEXT, **bad)
        assert refused.status_code == 400 and refused.json()["error"]["field"].startswith(next(iter(bad)))


def test_openai_route_ignores_marks(server: FunctionServer) -> None:
    response = requests.post(
        f"{server.url}/v1/audio/speech",
        json={"model": "tts-1", "input": "Hello.", "voice": "alloy", "marks": ["sentence"]},
        timeout=60,
    )
    assert response.status_code == 200 and "X-Marks-Uri" not in response.headers


def sse_events(response: requests.Response) -> list[dict]:
    return [json.loads(line[6:]) for line in response.iter_lines() if line.startswith(b"data: ")]


def test_sse_streams_marks_in_time_order_beside_the_audio(
    server: FunctionServer, hibari: HibariEngine
) -> None:
    text = "Streams carry marks too. One per sentence. In time order."
    for attempt in ("synthesized", "cached"):
        response = requests.post(
            f"{server.url}/synthesize",
            json={"text": text, "marks": ["sentence"], "stream": True, "stream_format": "sse"},
            stream=True,
            timeout=120,
        )
        events = sse_events(response)
        marks = [e["mark"] for e in events if e["type"] == "speech.mark"]
        assert [(m["start_sample"], m["end_sample"]) for m in marks] == expected_sentences(hibari, text), (
            attempt
        )
        assert [m["value"] for m in marks] == [
            "Streams carry marks too.",
            "One per sentence.",
            "In time order.",
        ]
        audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
        assert len(decode(audio).samples) == marks[-1]["end_sample"]
        assert events[-1]["type"] == "speech.audio.done"
        stored = json.loads(local(response.headers["X-Marks-Uri"]).read_text())
        assert stored["marks"] == marks
    # Raw audio streams carry no marks: only the header naming them.
    raw = requests.post(
        f"{server.url}/synthesize", json={"text": text, "marks": ["sentence"], "stream": True}, timeout=120
    )
    assert raw.headers["Content-Type"] == "audio/wav" and b"speech.mark" not in raw.content
    assert raw.headers["X-Marks-Uri"] == response.headers["X-Marks-Uri"]


def test_an_event_stores_marks_and_subtitles_beside_its_named_output(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    events = start_server("synthesize_event", TTS_OUTPUT_URI=str(tmp_path), TTS_ENGINES="hibari")
    delivery = eventarc_pubsub(
        {"text": TEXT, "output": "marked/report", "marks": ["sentence"], "subtitles": "srt"}
    )
    acknowledged(delivery.to(events))
    record = json.loads((tmp_path / "marked" / "report.wav.json").read_text())
    assert record["status"] == "succeeded"
    assert record["marks_uri"] == (tmp_path / "marked" / "report.wav.marks.json").as_uri()
    marks = json.loads(local(record["marks_uri"]).read_text())["marks"]
    wav = decode((tmp_path / "marked" / "report.wav").read_bytes())
    assert len(marks) == 4 and marks[-1]["end_sample"] == len(wav.samples)
    cues_read = list(srt.parse(local(record["subtitles_uri"]).read_text()))
    assert [c.content for c in cues_read] == [" ".join(m["value"].split()) for m in marks]


def test_a_jobs_marks_cover_the_whole_document_with_parts_offset(
    front: FunctionServer,  # noqa: F811
    fleet: list[FunctionServer],  # noqa: F811
    out: Path,  # noqa: F811
    receiver: Receiver,
) -> None:
    text = document(6)
    accepted = requests.post(
        f"{front.url}/jobs", json={"text": text, "marks": ["sentence"], "subtitles": "vtt"}, timeout=60
    ).json()
    assert accepted["parts"] >= 2 and accepted["marks_uri"].endswith("audio.wav.marks.json")
    done = wait_for_job(front.url, accepted["job_id"])
    assert done["status"] == "succeeded", done
    wav = decode(local(done["uri"]).read_bytes())
    doc = json.loads(local(done["marks_uri"]).read_text())
    marks = doc["marks"]
    normalised = "\n".join(line for line in text.split("\n") if line)  # the job's text: blank lines dropped
    assert len(marks) == normalised.count(".") and doc["samples"] == len(wav.samples)
    assert marks[-1]["end_sample"] == len(wav.samples)
    for mark in marks:  # every sentence, at its place in the document and in the audio
        assert normalised[mark["start"] : mark["end"]] == mark["value"]
        assert mark["value"].startswith("The ") and mark["value"].endswith("tonight.")
        assert np.abs(wav.samples[mark["start_sample"] : mark["end_sample"]]).max() > 0.05
    starts = [m["start_sample"] for m in marks]
    assert starts == sorted(starts) and all(
        a["end_sample"] <= b["start_sample"] for a, b in itertools.pairwise(marks)
    )
    parsed = list(webvtt.from_buffer(io.StringIO(local(done["subtitles_uri"]).read_text())))
    assert [c.text for c in parsed] == [m["value"] for m in marks]


def test_the_locator_maps_rewritten_text_to_the_callers_characters() -> None:
    source = "今天是2024年3月5日，我花了35.5元。  Then, at 3:30 pm, we left."
    locator = Locator(source)
    first = locator.piece("今天是二零二四年三月五日，我花了三十五点五元。")
    second = locator.piece("Then, at 3:30 pm, we left.")
    assert source[first[0] : first[1]] == "今天是2024年3月5日，我花了35.5元。"
    assert source[second[0] : second[1]] == "Then, at 3:30 pm, we left."
    words = locator.words(second, ["Then", "at", "three", "thirty", "P.M.", "we", "left"])
    assert [source[a:b] for a, b in words] == ["Then", "at", "3:30", "3:30", "pm", "we", "left"]


def test_long_sentences_are_cut_into_readable_cues_inside_their_bounds() -> None:
    long = ", ".join(f"clause number {n} goes on" for n in range(12)) + "."
    doc = {
        "marks": [
            {
                "type": "sentence",
                "start_s": 1.0,
                "end_s": 9.0,
                "start_sample": 24_000,
                "end_sample": 216_000,
                "start": 0,
                "end": len(long),
                "value": long,
            }
        ]
    }
    made = cues(doc)
    assert len(made) > 1 and all(len(c.text) <= MAX_CUE_CHARS for c in made)
    assert " ".join(c.text for c in made) == long
    assert made[0].start_s == 1.0 and made[-1].end_s == 9.0
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(made))
