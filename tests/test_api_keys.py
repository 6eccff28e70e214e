"""API keys (function.auth): the key command, hashed storage, rotation, both headers, 401 in
OpenAI's shape, the key id (never the key) in the log, health open; and the time a check adds."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import openai
import pytest
import requests
from werkzeug.test import EnvironBuilder

from function import auth
from function.local import REPO
from tests.conftest import FunctionServer, ServerFactory


def make_key(file: Path, label: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "function.auth", "new", "--label", label, "--file", str(file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A key file with two valid keys (a rotation in progress)."""
    file = tmp_path_factory.mktemp("keys") / "keys.json"
    return file, make_key(file, "old laptop"), make_key(file, "new laptop")


@pytest.fixture(scope="module")
def keyed(start_server: ServerFactory, key_file: tuple[Path, str, str], tmp_path_factory) -> FunctionServer:
    out = tmp_path_factory.mktemp("keyed-out")
    return start_server(TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari", TTS_API_KEYS_FILE=str(key_file[0]))


def log_lines(server: FunctionServer) -> list[dict]:
    return [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]


def line_of(server: FunctionServer, request_id: str) -> dict:
    [line] = [e for e in log_lines(server) if e.get("request_id") == request_id]
    return line


def test_the_command_makes_high_entropy_keys_and_stores_only_their_hashes(key_file) -> None:
    file, old, new = key_file
    stored = json.loads(file.read_text())["keys"]
    assert [e["label"] for e in stored] == ["old laptop", "new laptop"]
    for key, entry in zip((old, new), stored, strict=True):
        match = auth.KEY_RE.match(key)
        assert match and match["id"] == entry["id"]
        assert len(key.split("_", 2)[2]) == 43  # 256 random bits, URL-safe base64
        assert entry["sha256"] == auth.digest(key) and key not in file.read_text()
    assert file.stat().st_mode & 0o077 == 0
    listed = subprocess.run(
        [sys.executable, "-m", "function.auth", "list", "--file", str(file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert stored[0]["id"] in listed and "old laptop" in listed and old not in listed


def test_rotation_several_keys_valid_and_a_revoked_one_refused_after_the_reload(tmp_path: Path) -> None:
    file = tmp_path / "keys.json"
    now = [0.0]
    old, new = make_key(file, "a"), make_key(file, "b")
    ring = auth.KeyRing(path=str(file), reload_s=30, clock=lambda: now[0])
    assert ring.check(old) and ring.check(new)
    assert auth.main(["revoke", auth.KEY_RE.match(old)["id"], "--file", str(file)]) == 0
    assert ring.check(old), "read again only after reload_s"
    now[0] = 31
    assert ring.check(old) is None and ring.check(new)
    file.write_text("{broken")  # a bad secret version keeps the keys last read
    now[0] = 62
    assert ring.check(new)
    # A wrong secret under a known id, an unknown id, and junk are all refused.
    assert ring.check(new[:-1] + ("A" if new[-1] != "A" else "B")) is None
    assert ring.check(auth.new_key()[0]) is None and ring.check("sk-not-ours") is None


def test_no_keys_configured_means_nothing_is_checked() -> None:
    assert auth.guard(auth.KeyRing(), bearer=True, open_paths=set()) is None


def test_missing_or_wrong_key_is_a_401_in_openais_shape(keyed: FunctionServer) -> None:
    for headers, code in [
        ({}, "missing_api_key"),
        ({"X-API-Key": "tts_00000000_" + "x" * 43}, "invalid_api_key"),
        ({"Authorization": "Bearer nope"}, "invalid_api_key"),
    ]:
        response = requests.post(f"{keyed.url}/synthesize", json={"text": "Hi."}, headers=headers, timeout=30)
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == code and error["type"] == "invalid_request_error" and error["message"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(f"{keyed.url}/voices", timeout=30).status_code == 401


def test_health_is_open_and_either_header_carries_a_key(keyed: FunctionServer, key_file) -> None:
    _, old, new = key_file
    for path in ("/healthz", "/health"):
        assert requests.get(f"{keyed.url}{path}", timeout=30).status_code == 200
    assert requests.get(f"{keyed.url}/voices", headers={"X-API-Key": old}, timeout=30).ok
    assert requests.get(f"{keyed.url}/voices", headers={"Authorization": f"Bearer {new}"}, timeout=30).ok


def test_the_openai_sdk_authenticates_with_api_key_and_raises_authentication_error(
    keyed: FunctionServer, key_file
) -> None:
    _, old, _ = key_file
    wrong = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as refused:
        wrong.audio.speech.create(model="tts-1", voice="alloy", input="Hello.")
    assert refused.value.status_code == 401 and refused.value.code == "invalid_api_key"
    right = openai.OpenAI(base_url=f"{keyed.url}/v1", api_key=old, max_retries=0)
    speech = right.audio.speech.create(model="tts-1", voice="alloy", input="Hello.", response_format="wav")
    assert speech.content[:4] == b"RIFF"


def test_every_log_line_names_the_key_id_and_none_the_key(keyed: FunctionServer, key_file) -> None:
    _, old, _ = key_file
    request_id = uuid.uuid4().hex
    headers = {"X-API-Key": old, "X-Request-Id": request_id}
    text = f"Which key asked for {request_id[:6]}?"
    assert requests.post(f"{keyed.url}/synthesize", json={"text": text}, headers=headers, timeout=60).ok
    key_id = auth.KEY_RE.match(old)["id"]
    assert line_of(keyed, request_id)["key_id"] == key_id
    # Lines written during a request (the model load) carry it too; refused requests carry none.
    for line in log_lines(keyed):
        if line.get("message") == "model loaded":
            assert line["key_id"] in {auth.KEY_RE.match(k)["id"] for k in key_file[1:]}
        if line.get("error") in {"missing_api_key", "invalid_api_key"}:
            assert "key_id" not in line and line["httpRequest"]["status"] == 401
    secrets = [key.split("_", 2)[2] for key in key_file[1:]]
    assert not [s for s in secrets if s in keyed.logs()]


def test_with_iam_in_front_keys_come_as_x_api_key_only(
    start_server: ServerFactory, key_file, tmp_path: Path
) -> None:
    file, old, _ = key_file
    server = start_server(
        TTS_OUTPUT_URI=str(tmp_path),
        TTS_ENGINES="hibari",
        TTS_API_KEYS=file.read_text(),
        TTS_API_KEY_BEARER="false",
    )
    # Authorization holds Google's identity token here, never a key.
    response = requests.get(f"{server.url}/voices", headers={"Authorization": f"Bearer {old}"}, timeout=30)
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_api_key"
    assert "WWW-Authenticate" not in response.headers
    assert requests.get(f"{server.url}/voices", headers={"X-API-Key": old}, timeout=30).ok


def test_a_key_check_adds_well_under_a_millisecond(key_file, capsys) -> None:
    file, old, _ = key_file
    check = auth.guard(auth.KeyRing(path=str(file)), bearer=True, open_paths={"/healthz"})
    builder = EnvironBuilder(
        path="/v1/audio/speech", method="POST", headers={"Authorization": f"Bearer {old}"}
    )
    request = builder.get_request()
    timings = []
    for _ in range(2000):
        started = time.perf_counter_ns()
        check(request)
        timings.append(time.perf_counter_ns() - started)
    median_us = statistics.median(timings) / 1000
    with capsys.disabled():
        print(f"\nkey check: median {median_us:.1f} µs per request (2000 checks)")
    assert median_us < 1000


# Issue 24, defect 5: key files of the wrong shape, swapped in while serving.
WRONG_SHAPES = {
    "a number": "5",
    "null keys": '{"keys": null}',
    "a list of strings": '["abc"]',
    "keys as a string": '{"keys": "abc"}',
    "an entry without a hash": '[{"id": "0000abcd"}]',
    "an id of 7 digits": '[{"id": 1234567, "sha256": "' + "0" * 64 + '"}]',
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "not UTF-8": "\udcff",
    "a missing file": "",
}


def swap(file: Path, content: str) -> None:
    if not content:
        file.unlink()
    else:
        file.write_bytes(content.encode("utf-8", "surrogateescape"))


@pytest.mark.parametrize("shape", WRONG_SHAPES)
def test_a_malformed_key_file_keeps_the_last_good_keys_and_logs_once(
    tmp_path: Path, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "keys.json"
    key = make_key(file, "caller")
    good = file.read_text()
    now = [0.0]
    ring = auth.KeyRing(path=str(file), reload_s=30, clock=lambda: now[0])
    swap(file, WRONG_SHAPES[shape])
    for step in range(1, 4):  # three reloads of the same broken file
        now[0] = 31.0 * step
        assert ring.check(key), shape
        assert ring.degraded
    warnings = [r for r in caplog.records if r.name == "function.auth" and r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    file.write_text(good)
    now[0] = 200.0
    assert ring.check(key) and not ring.degraded


def test_a_malformed_key_file_swapped_in_while_serving_keeps_serving(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    """Through the server: every keyed route was a 500 (TypeError in the parser) while /healthz
    said ok. The server re-reads the file every 30 s."""
    file = tmp_path / "keys.json"
    key = make_key(file, "caller")
    server = start_server(
        TTS_OUTPUT_URI=str(tmp_path / "out"), TTS_ENGINES="hibari", TTS_API_KEYS_FILE=str(file)
    )
    assert requests.get(f"{server.url}/healthz", timeout=10).json()["api_keys"] == "ok"
    file.write_text('{"keys": null}')
    time.sleep(auth.RELOAD_S + 1)
    for _ in range(3):
        assert requests.get(f"{server.url}/voices", headers={"X-API-Key": key}, timeout=30).status_code == 200
    refused = requests.get(f"{server.url}/voices", headers={"X-API-Key": auth.new_key()[0]}, timeout=30)
    assert refused.status_code == 401
    health = requests.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() | {"engines": []} == {
        "status": "degraded",
        "engines": [],
        "model_loaded": False,
        "api_keys": "degraded",
    }
    assert "null" not in health.text and str(file) not in health.text  # no details
    warnings = [e for e in log_lines(server) if "API key file" in e.get("message", "")]
    assert len(warnings) == 1 and warnings[0]["severity"] == "WARNING"


def two_keys(file: Path) -> list[str]:
    made = [auth.new_key() for _ in range(2)]
    file.write_text(
        json.dumps({"keys": [{"id": key_id, "sha256": auth.digest(key)} for key, key_id in made]})
    )
    return [key for key, _ in made]


@pytest.mark.parametrize("shared", [False, True])
def test_the_cache_tells_no_key_what_another_asked_for_unless_shared(
    start_server: ServerFactory, tmp_path: Path, shared: bool
) -> None:
    """Issue 24, defect 9: ``cached: true`` told key B that key A had asked for a text."""
    key_a, key_b = two_keys(tmp_path / "keys.json")
    server = start_server(
        TTS_OUTPUT_URI=str(tmp_path / "out"),
        TTS_ENGINES="hibari",
        TTS_API_KEYS_FILE=str(tmp_path / "keys.json"),
        TTS_SHARED_CACHE=str(shared).lower(),
    )
    text = {"text": f"A private sentence {uuid.uuid4().hex[:8]}."}

    def speak(key: str) -> dict:
        response = requests.post(
            f"{server.url}/synthesize", json=text, headers={"X-API-Key": key}, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()

    first = speak(key_a)
    assert first["cached"] is False and speak(key_a)["cached"] is True
    other = speak(key_b)
    assert other["cached"] is shared
    assert (other["object"] == first["object"]) is shared
    assert speak(key_b)["cached"] is True  # each key's own cache still works
