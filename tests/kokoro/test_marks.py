"""Kokoro's speech marks: the durations output the build adds (the audio unchanged to the bit),
sentence marks equal to the samples of each piece, word marks from the model's own phoneme
durations (in order, inside their sentence, on the caller's words), through a real server."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests

from function.engines.base import EngineLoadError, TimedWord
from function.engines.kokoro import KokoroEngine
from function.engines.kokoro.assets import build, build_timed
from function.engines.kokoro.files import STATIC_FILE, TIMED_FILE, Manifest, read_model_parts
from function.engines.kokoro.timing import DURATIONS, SAMPLES_PER_FRAME, fit_to_sound
from function.marks import Recorder
from tests.audio_checks import decode
from tests.conftest import FunctionServer, ServerFactory
from tests.kokoro.test_function import kokoro_server  # noqa: F401

RATE = 24_000
PAUSE = round(0.2 * RATE)
ENGLISH = "The quick brown fox jumps over the lazy dog. Then it ran away, far into the woods!"
CHINESE = "今天天气很好，我们去公园散步吧。重庆的火锅很好吃！"


def test_the_built_models_output_durations_and_the_same_audio(
    kokoro_dir: Path, engine: KokoroEngine, tmp_path: Path
) -> None:
    import onnxruntime as ort

    # The build keeps only the static model; the timed one it was made from is made again here.
    manifest = Manifest.read(kokoro_dir)
    assert manifest.timed_sha256 is None and not (kokoro_dir / TIMED_FILE).exists()
    build_timed(tmp_path, read_model_parts())
    parts = ort.InferenceSession(read_model_parts(), providers=["CPUExecutionProvider"])
    timed = ort.InferenceSession(str(tmp_path / TIMED_FILE), providers=["CPUExecutionProvider"])
    static = ort.InferenceSession(str(kokoro_dir / STATIC_FILE), providers=["CPUExecutionProvider"])
    assert [o.name for o in parts.get_outputs()] == ["audio"]
    for session in (timed, static):
        assert [o.name for o in session.get_outputs()] == ["audio", DURATIONS]
    for voice, text in (("af_heart", ENGLISH), ("zf_xiaobei", CHINESE)):
        feed = engine.feed(engine.phonemes(text, voice), voice, 1.3)
        audio, durations = timed.run(None, feed)
        assert np.array_equal(audio, parts.run(None, feed)[0])  # the export's audio, to the bit
        # One frame count per input position (the pads included); the decoder renders exactly them.
        assert durations.shape == (1, feed[engine._token_input].shape[1])
        assert int(durations.sum()) * SAMPLES_PER_FRAME == len(audio) == len(static.run(None, feed)[0])


def test_word_marks_follow_the_phonemes_through_trimming_and_speed(engine: KokoroEngine) -> None:
    for speed in (1.0, 1.6):
        recorder = Recorder()
        with engine.listening(recorder):
            recorder.piece(ENGLISH)
            audio = engine.synthesize(ENGLISH, "af_heart", speed)
            recorder.audio(len(audio))
        words = recorder.pieces[0].words
        spoken = [w.text for w in words if w.text.isalpha()]
        assert spoken == [w.strip(".,!") for w in ENGLISH.split()]
        assert all(0 <= w.start < w.end <= len(audio) for w in words)
        assert all(a.end <= b.start for a, b in itertools.pairwise(words))
        if speed == 1.0:
            slow = words
    # Faster speech: the words take less time (Kokoro divides its durations by the speed).
    assert sum(w.end - w.start for w in words) < 0.75 * sum(w.end - w.start for w in slow)


def test_sentence_and_word_marks_over_http_in_english_and_chinese(
    kokoro_server: FunctionServer,  # noqa: F811
    engine: KokoroEngine,
) -> None:
    for text, voice in ((ENGLISH, "af_heart"), (CHINESE, "zf_xiaobei")):
        response = requests.post(
            f"{kokoro_server.url}/synthesize",
            json={"text": text, "voice": voice, "marks": ["sentence", "word"], "subtitles": "srt"},
            timeout=300,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        marks = body["marks"]
        wav = decode(Path(body["uri"].removeprefix("file://")).read_bytes())
        sentences = [m for m in marks if m["type"] == "sentence"]
        # Exact: each sentence is the samples the engine gives its piece, the pause between them.
        expected, position = [], 0
        for index, piece in enumerate(engine.pieces(text)):
            position += PAUSE if index else 0
            length = len(engine.synthesize(piece, voice, 1.0))
            expected.append((position, position + length))
            position += length
        assert [(m["start_sample"], m["end_sample"]) for m in sentences] == expected
        assert sentences[-1]["end_sample"] == len(wav.samples)
        words = [m for m in marks if m["type"] == "word"]
        assert len(words) >= 8
        for word in words:
            inside = [s for s in sentences if s["start_sample"] <= word["start_sample"] < s["end_sample"]]
            assert len(inside) == 1 and word["end_sample"] <= inside[0]["end_sample"]
            assert inside[0]["start"] <= word["start"] < word["end"] <= inside[0]["end"]
            assert word["value"] == text[word["start"] : word["end"]] and word["value"].strip()
            # A word is sound: its loudest sample well above the silence of the pause.
            assert np.abs(wav.samples[word["start_sample"] : word["end_sample"]]).max() > 0.02
        values = [w["value"] for w in words]
        if voice == "af_heart":
            assert values == [w.strip(".,!") for w in text.split()]
        else:  # jieba's words, each the caller's characters
            assert (
                "重庆" in values
                and "火锅" in values
                and "".join(values) == "".join(c for c in text if c.isalnum())
            )


def test_sse_sends_kokoro_word_marks_before_the_stream_ends(
    kokoro_server: FunctionServer,  # noqa: F811
) -> None:
    response = requests.post(
        f"{kokoro_server.url}/synthesize",
        json={"text": CHINESE, "marks": ["word"], "stream": True, "stream_format": "sse"},
        stream=True,
        timeout=300,
    )
    events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith(b"data: ")]
    kinds = [e["type"] for e in events]
    marks = [e["mark"] for e in events if e["type"] == "speech.mark"]
    assert marks and {m["type"] for m in marks} == {"word"}
    starts = [m["start_sample"] for m in marks]
    assert starts == sorted(starts)
    # The first sentence's marks come before the second sentence's audio.
    assert kinds.index("speech.mark") < len(kinds) - 1 - kinds[::-1].index("speech.audio.delta")
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert marks[-1]["end_sample"] <= len(decode(audio).samples)


def test_a_stream_of_audio_stored_without_marks_times_that_audio(
    kokoro_server: FunctionServer,  # noqa: F811
) -> None:
    text, voice = "Stored before anyone asked. Timed when they did.", "af_heart"
    plain = requests.post(f"{kokoro_server.url}/synthesize", json={"text": text, "voice": voice}, timeout=300)
    stored = decode(Path(plain.json()["uri"].removeprefix("file://")).read_bytes())
    response = requests.post(
        f"{kokoro_server.url}/synthesize",
        json={"text": text, "voice": voice, "marks": ["sentence"], "stream": True, "stream_format": "sse"},
        stream=True,
        timeout=300,
    )
    events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith(b"data: ")]
    audio = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
    assert np.array_equal(decode(audio).samples, stored.samples)  # the stored (whole) audio
    marks = [e["mark"] for e in events if e["type"] == "speech.mark"]
    # Timed on that audio (not on the stream's clause-cut variant): the last sentence ends it.
    assert [m["value"] for m in marks] == ["Stored before anyone asked.", "Timed when they did."]
    assert marks[-1]["end_sample"] == len(stored.samples)


def test_a_changed_timed_model_does_not_load(kokoro_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(kokoro_dir, model_dir, ignore=shutil.ignore_patterns(STATIC_FILE))
    build(model_dir, offline=True, static=False)  # a dir that keeps the timed model
    timed = model_dir / TIMED_FILE
    data = bytearray(timed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    timed.write_bytes(bytes(data))
    with pytest.raises(EngineLoadError, match=r"model\.timed\.onnx is missing or does not match"):
        KokoroEngine(model_dir, static=False).load()


def test_a_model_dir_without_the_timed_model_refuses_word_marks(
    start_server: ServerFactory, kokoro_dir: Path, tmp_path: Path
) -> None:
    old = tmp_path / "model"
    shutil.copytree(kokoro_dir, old, ignore=shutil.ignore_patterns(TIMED_FILE, STATIC_FILE))
    manifest = Manifest.read(old)
    (old / "manifest.json").write_text(Manifest(manifest.model_sha256, manifest.voices).to_json())
    assert not KokoroEngine(old).times_words()
    server = start_server(TTS_ENGINES="kokoro", TTS_KOKORO_DIR=str(old), TTS_OUTPUT_URI=str(tmp_path / "out"))
    response = requests.post(
        f"{server.url}/synthesize", json={"text": "Hello there.", "marks": ["word"]}, timeout=60
    )
    assert response.status_code == 400 and response.json()["error"]["field"] == "marks"
    assert "kokoro" in response.json()["error"]["message"]


def _tone(seconds: float) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(round(seconds * RATE)) / RATE)).astype(np.float32)


def test_word_boundaries_at_a_pause_move_to_the_sound_and_the_rest_stay() -> None:
    """Sound 0-0.5 s (two words), a pause to 0.8 s, sound to 1.2 s: durations that hold the second
    word 0.2 s into the pause and start the third 40 ms after its sound are moved to the sound;
    the boundary inside speech stays where the durations put it, and the comma now ends where the
    third word starts."""
    audio = np.concatenate([_tone(0.5), np.zeros(round(0.3 * RATE), np.float32), _tone(0.4)])
    at = lambda seconds: round(seconds * RATE)  # noqa: E731
    words = [
        TimedWord("one", at(0.0), at(0.25)),
        TimedWord("two", at(0.25), at(0.7)),
        TimedWord(",", at(0.7), at(0.84)),
        TimedWord("three", at(0.84), at(1.2)),
    ]
    fitted = fit_to_sound(words, audio, RATE)
    assert [w.text for w in fitted] == ["one", "two", ",", "three"]
    assert fitted[0] == words[0]
    assert fitted[2] == TimedWord(",", words[2].start, fitted[3].start)
    assert fitted[1].start == words[1].start and abs(fitted[1].end - at(0.5)) <= at(0.005)
    assert abs(fitted[3].start - at(0.8)) <= at(0.005) and fitted[3].end == words[3].end


def test_kokoro_word_marks_meet_the_pauses_where_the_sound_does(engine: KokoroEngine) -> None:
    """At every pause inside the sentence (60 ms or more 35 dB under its level, 5 ms windows), the
    word before ends where the sound stops and the word after starts no later than it resumes."""
    recorder = Recorder()
    text = "When the rain stopped, we walked home, and the streets were quiet."
    with engine.listening(recorder):
        recorder.piece(text)
        audio = engine.synthesize(text, "af_heart", 1.0)
        recorder.audio(len(audio))
    words = [w for w in recorder.pieces[0].words if any(c.isalnum() for c in w.text)]
    window = RATE // 200
    power = (audio[: len(audio) // window * window].astype(np.float64) ** 2).reshape(-1, window).mean(axis=1)
    quiet = np.concatenate(([False], power < np.percentile(power, 95) * 10 ** (-35 / 10), [False]))
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    pauses = [(a * window, b * window) for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= 12]
    inside = [(a, b) for a, b in pauses if words[0].start < a and b < words[-1].end]
    assert inside, "the commas should make pauses"
    for start, end in inside:
        before = [w for w in words if w.start < start][-1]
        after = next(w for w in words if w.start >= before.end)
        assert abs(before.end - start) <= window, (before, start)
        assert start <= after.start <= end + window, (after, end)
