"""The HTTP function end to end: a real functions-framework server, real synthesis, real files."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from tests import log_contract as contract
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory, post_at_once

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
RATE = 24_000


def post(
    server: FunctionServer, body: object, path: str = "/synthesize", **kwargs: object
) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, timeout=60, **kwargs)


def local_file(uri: str) -> Path:
    assert uri.startswith("file://"), uri
    return Path(urlparse(uri).path)


def log_lines(server: FunctionServer) -> list[dict]:
    return [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]


def test_cold_start_is_paid_by_the_first_synthesis_only(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server(TTS_OUTPUT_URI=str(tmp_path), TTS_ENGINES="hibari")
    health = requests.get(f"{server.url}/healthz", timeout=5).json()
    assert health == {"status": "ok", "engines": [{"name": "hibari", "loaded": False}], "model_loaded": False}
    voices = requests.get(f"{server.url}/voices", timeout=5).json()
    assert {"id": "heart", "language": "en-US"}.items() <= voices["voices"][0].items()
    assert voices["voices"][0]["sample_rate"] == RATE
    assert requests.get(f"{server.url}/healthz", timeout=5).json()["model_loaded"] is False

    first = post(server, {"text": SENTENCE}).json()
    assert first["cold_start"] is True and first["load_ms"] > 0
    second = post(server, {"text": "A different sentence, so no cache hit."}).json()
    assert second["cold_start"] is False and "load_ms" not in second
    assert second["cached"] is False and second["synthesis_ms"] > 0
    assert requests.get(f"{server.url}/health", timeout=5).json()["model_loaded"] is True
    loads = [e for e in log_lines(server) if e["message"] == "model loaded"]
    assert len(loads) == 1 and loads[0]["load_ms"] > 0


def test_synthesize_writes_real_speech_to_the_local_folder(server: FunctionServer, local_out: Path) -> None:
    response = post(server, {"text": SENTENCE})
    assert response.status_code == 200, response.text
    body = response.json()
    path = local_file(body["uri"])
    assert path.parent == local_out and path.suffix == ".wav"
    audio = decode(path.read_bytes())
    assert_speech(audio, RATE, min_s=1.5, max_s=10)
    assert body["duration_s"] == pytest.approx(audio.duration_s, abs=0.01)
    assert {
        "format": "wav",
        "content_type": "audio/wav",
        "sample_rate": RATE,
        "voice": "heart",
        "engine": "hibari",
        "url": None,
    }.items() <= body.items()
    assert body["upload_ms"] >= 0 and body["synthesis_ms"] > 0


def test_duration_grows_with_text_and_shrinks_with_speed(server: FunctionServer) -> None:
    def duration(text: str, speed: float = 1.0) -> float:
        body = post(server, {"text": text, "speed": speed}).json()
        return decode(local_file(body["uri"]).read_bytes()).duration_s

    short = duration("Hello there.")
    long = duration("Hello there. " + SENTENCE + " It was a sunny afternoon and nobody was in a hurry.")
    assert long > 2.5 * short
    slow, fast = duration(SENTENCE, 0.75), duration(SENTENCE, 1.5)
    assert slow > 1.5 * fast


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "ogg", "opus", "pcm"])
def test_every_format_decodes(server: FunctionServer, fmt: str) -> None:
    body = post(server, {"text": f"This sentence is encoded as {fmt}.", "format": fmt}).json()
    data = local_file(body["uri"]).read_bytes()
    assert body["format"] == fmt and body["uri"].endswith(f".{fmt}")
    audio = decode(data, fmt, pcm_rate=body["sample_rate"])
    assert_speech(audio, body["sample_rate"], min_s=1.0, max_s=8)
    # Duration survives encoding (codecs pad a little at the ends).
    assert audio.duration_s == pytest.approx(body["duration_s"], abs=0.1)


def test_audio_in_the_body_on_request_and_the_object_is_still_written(server: FunctionServer) -> None:
    by_accept = post(server, {"text": "Audio comes back in the body."}, headers={"Accept": "audio/*"})
    assert by_accept.status_code == 200
    assert by_accept.headers["Content-Type"] == "audio/wav"
    assert_speech(decode(by_accept.content), RATE)
    assert local_file(by_accept.headers["X-Audio-Uri"]).read_bytes() == by_accept.content

    by_query = requests.post(
        f"{server.url}/synthesize?response=audio",
        timeout=60,
        json={"text": "Audio comes back in the body.", "format": "flac"},
    )
    assert by_query.headers["Content-Type"] == "audio/flac"
    assert_speech(decode(by_query.content), RATE)


def test_identical_request_is_a_cache_hit_without_synthesis(server: FunctionServer) -> None:
    text = "Caching saves the second caller a synthesis."
    first = post(server, {"text": text}).json()
    # The same request modulo whitespace is the same request.
    second = post(server, {"text": "  Caching saves the second   caller a synthesis.\n"}).json()
    assert first["cached"] is False and second["cached"] is True
    assert second["uri"] == first["uri"] and second["duration_s"] == first["duration_s"]
    assert "synthesis_ms" not in second and "load_ms" not in second
    cached_audio = post(server, {"text": text}, headers={"Accept": "audio/wav"})
    assert cached_audio.headers["X-Audio-Cached"] == "true"
    assert cached_audio.content == local_file(first["uri"]).read_bytes()
    other_voice_speed = post(server, {"text": text, "speed": 1.25}).json()
    assert other_voice_speed["uri"] != first["uri"] and other_voice_speed["cached"] is False


def test_two_instances_racing_on_one_request_leave_one_object(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    instances = [start_server(TTS_OUTPUT_URI=str(tmp_path)) for _ in range(2)]
    text = "Two instances race to write this very sentence."
    responses = post_at_once([f"{s.url}/synthesize" for s in instances], json={"text": text})
    results = [r.json() for r in responses]
    assert len({r["uri"] for r in results}) == 1
    audio_files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert len(audio_files) == 1 and not list(tmp_path.glob(".*.tmp"))
    assert_speech(decode(audio_files[0].read_bytes()), RATE)


def test_json_logs_carry_severity_trace_and_timings(server: FunctionServer) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    post(server, {"text": "Log this request, please."}, headers={"X-Cloud-Trace-Context": f"{trace}/1;o=1"})
    entry = next(e for e in reversed(log_lines(server)) if e.get("logging.googleapis.com/trace") == trace)
    assert entry["severity"] == "INFO" and entry["message"] == "POST /synthesize 200"
    assert entry["httpRequest"]["status"] == 200 and entry["logging.googleapis.com/spanId"] == "1"
    assert entry["synthesis_ms"] > 0 and "upload_ms" in entry and entry["cached"] is False


def test_a_log_entry_stays_one_line_whatever_the_path_holds(server: FunctionServer) -> None:
    # U+2028 and U+0085 are line ends to splitlines() and JavaScript, not to JSON: escaped.
    request_id = uuid.uuid4().hex
    requests.get(f"{server.url}/odd%E2%80%A8path%C2%85", headers={"X-Request-Id": request_id}, timeout=10)
    [raw] = [line for line in server.logs().split("\n") if request_id in line]
    assert len(raw.splitlines()) == 1
    assert json.loads(raw)["httpRequest"]["requestUrl"] == "/odd\u2028path\x85"


def request_line(server: FunctionServer, request_id: str) -> dict:
    [line] = [e for e in log_lines(server) if e.get("request_id") == request_id]
    return line


def test_the_request_log_line_has_exactly_the_contracted_fields(server: FunctionServer) -> None:
    post(server, {"text": "Warm the model up before the line is pinned."})  # no load_ms below
    headers = {"X-Request-Id": uuid.uuid4().hex, "X-Cloud-Trace-Context": f"{uuid.uuid4().hex}/7;o=1"}
    assert post(server, {"text": f"Pin the fields of {uuid.uuid4().hex[:6]}."}, headers=headers).ok
    line = request_line(server, headers["X-Request-Id"])
    assert set(line) == contract.HTTP | contract.TRACE | contract.SYNTHESIZED
    assert set(line["httpRequest"]) == contract.HTTP_REQUEST
    assert line["severity"] == "INFO" and line["cached"] is False and line["cold_start"] is False

    marked = {"X-Request-Id": uuid.uuid4().hex}
    body = {"text": f"Marks of {uuid.uuid4().hex[:6]}.", "marks": ["sentence"], "subtitles": "vtt"}
    assert post(server, body, headers=marked).ok
    line = request_line(server, marked["X-Request-Id"])
    assert set(line) == contract.HTTP | contract.SYNTHESIZED | contract.MARKED
    assert line["marks_uri"].endswith(".marks.json") and line["subtitles_uri"].endswith(".vtt")

    failed = {"X-Request-Id": uuid.uuid4().hex}
    assert post(server, {"text": "Hi.", "voice": "nobody"}, headers=failed).status_code == 400
    line = request_line(server, failed["X-Request-Id"])
    assert set(line) == contract.HTTP | contract.ERROR
    assert (line["severity"], line["error"], line["error_field"]) == ("WARNING", "unknown_voice", "voice")
    assert line["message"] == "POST /synthesize 400" and line["httpRequest"]["status"] == 400


def test_importing_the_entry_point_loads_no_model_runtime() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import function.main; "
        "print(sorted(m for m in ('onnxruntime', 'hibari', 'torch', 'soxr', 'google.cloud.storage', "
        "'pydantic_settings') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
        env={"PATH": "/usr/bin:/bin", "TTS_OUTPUT_URI": "/tmp/x"},
    )
    assert out.stdout.strip() == "[]"
