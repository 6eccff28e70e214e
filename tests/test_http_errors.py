"""Bad input and failures: an honest status, a JSON body naming the field and the limit, nothing
half-written, and the server keeps serving."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests import log_contract as contract
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory
from tests.test_http_api import log_lines


def error_of(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] and error["message"]
    assert "Traceback" not in response.text
    return error


def still_serves(server: FunctionServer) -> None:
    response = requests.post(f"{server.url}/synthesize", json={"text": "Still here."}, timeout=60)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"text": ""}, "text", "empty"),
        ({"text": "   \n  "}, "text", "empty"),
        ({"text": "a" * 4097}, "text", "4096"),
        ({"text": "Hi.", "voice": "nobody"}, "voice", "heart"),
        ({"text": "Hi.", "format": "aac"}, "format", "AAC"),
        ({"text": "Hi.", "format": "wma"}, "format", "wav, flac, mp3, ogg, opus, pcm"),
        ({"text": "Hi.", "speed": 3.0}, "speed", "between 0.5 and 2.0"),
        ({"text": "Hi.", "speed": 0.1}, "speed", "between 0.5 and 2.0"),
        ({"text": "Hi.", "language": "fr"}, "language", "zh-CN"),
        ({"text": "Hi.", "voice": "heart", "language": "fr"}, "language", "en-US"),
        ({"text": "Hi.", "speed": "fast"}, "speed", "number"),
        ({"voice": "heart"}, "text", "required"),
        ({"text": "Hi.", "colour": "blue"}, "colour", "xtra"),
        (["text"], "body", "object"),
    ],
)
def test_bad_fields_are_400_naming_the_field(
    server: FunctionServer, body: object, field: str, needle: str
) -> None:
    error = error_of(requests.post(f"{server.url}/synthesize", json=body, timeout=10), 400)
    assert error["field"] == field
    assert needle in error["message"]
    still_serves(server)


def test_malformed_and_oversized_bodies(server: FunctionServer) -> None:
    url = f"{server.url}/synthesize"
    bad_json = requests.post(url, data=b'{"text": ', headers={"Content-Type": "application/json"}, timeout=10)
    assert error_of(bad_json, 400)["code"] == "invalid_json"
    form = requests.post(url, data={"text": "hi"}, timeout=10)
    assert "application/json" in error_of(form, 415)["message"]
    huge = requests.post(url, json={"text": "a" * 300_000}, timeout=10)
    assert "262144" in error_of(huge, 413)["message"]
    still_serves(server)


def test_unknown_routes_and_methods(server: FunctionServer) -> None:
    missing = error_of(requests.get(f"{server.url}/nope", timeout=10), 404)
    assert "/synthesize" in missing["message"]
    wrong = requests.get(f"{server.url}/synthesize", timeout=10)
    assert error_of(wrong, 405)["code"] == "method_not_allowed"
    assert wrong.headers["Allow"] == "POST"
    # A line break in the path escapes the framework's own catch-all route (werkzeug's path
    # converter stops at it): still the JSON 404, never Flask's HTML page (found by the fuzzer).
    unrouted = {"/jobs/abc%0Adef": "job_not_found", "/x%0A": "not_found", "/synthesize%0A": "not_found"}
    for path, code in unrouted.items():
        assert error_of(requests.get(f"{server.url}{path}", timeout=10), 404)["code"] == code, path
    still_serves(server)


def test_text_that_cannot_finish_in_time_points_to_the_event_path(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    # 0.05 s/char against a 10 s timeout: about 160 characters fit.
    server = start_server(
        TTS_OUTPUT_URI=str(tmp_path), TTS_REQUEST_TIMEOUT_S="10", TTS_SECONDS_PER_CHAR="0.05"
    )
    ok = requests.post(f"{server.url}/synthesize", json={"text": "Short enough."}, timeout=30)
    assert ok.status_code == 200
    long_text = "This sentence is long enough to matter. " * 10
    error = error_of(requests.post(f"{server.url}/synthesize", json={"text": long_text}, timeout=10), 400)
    assert error["code"] == "text_too_long_for_timeout" and error["field"] == "text"
    assert "Pub/Sub" in error["message"] and "10 s" in error["message"]


def test_model_that_cannot_load_is_503_with_retry_after(start_server: ServerFactory, tmp_path: Path) -> None:
    # A real broken model: a corrupt voice file where hibari looks for baked-in voices.
    home = tmp_path / "hibari-home"
    home.mkdir()
    (home / "bf_emma.int8.onnx").write_bytes(b"not an onnx model")
    out = tmp_path / "out"
    server = start_server(TTS_OUTPUT_URI=str(out), HIBARI_HOME=str(home))
    response = requests.post(f"{server.url}/synthesize", json={"text": "Hello."}, timeout=30)
    error = error_of(response, 503)
    assert error["code"] == "model_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert not out.exists() or not any(p.is_file() for p in out.iterdir())
    assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_unwritable_storage_is_503_and_nothing_is_left(start_server: ServerFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("the output folder cannot live inside a file")
    server = start_server(TTS_OUTPUT_URI=str(blocker / "out"))
    response = requests.post(f"{server.url}/synthesize", json={"text": "Nowhere to go."}, timeout=30)
    assert error_of(response, 503)["code"] == "storage_unavailable"
    assert response.headers["Retry-After"]
    assert blocker.read_text().startswith("the output folder")
    # The caller's message hides the cause; the request's one log line keeps it.
    [line] = [e for e in log_lines(server) if e.get("httpRequest", {}).get("status") == 503]
    assert set(line) == contract.HTTP | contract.ERROR | {"cause"} and str(blocker) in line["cause"]


def test_missing_bucket_is_503_and_the_server_recovers(
    start_server: ServerFactory, gcs: str, tmp_path: Path
) -> None:
    from tests.conftest import gcs_client

    bucket = "created-later"
    server = start_server(TTS_OUTPUT_URI=f"gs://{bucket}/audio", STORAGE_EMULATOR_HOST=gcs)
    body = {"text": "Storage comes back."}
    response = requests.post(f"{server.url}/synthesize", json=body, timeout=60)
    assert error_of(response, 503)["code"] == "storage_unavailable"
    gcs_client(gcs).create_bucket(bucket)
    retried = requests.post(
        f"{server.url}/synthesize", json=body, headers={"Accept": "audio/wav"}, timeout=60
    )
    assert retried.status_code == 200
    assert_speech(decode(retried.content), 24_000)
