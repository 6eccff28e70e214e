"""Regressions of issue 11, each driven through a real server (HTTP or the event target): nothing a
caller sends takes the instance down, loops a message forever or poisons the cache."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from pathlib import Path

import pytest
import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory
from tests.test_events import (
    FINALIZED,
    OUTPUT,
    RATE,
    Bucket,
    Delivery,
    acknowledged,
    event_env,
    event_logs,
    eventarc_pubsub,
    raw_push,
)
from tests.test_http_errors import error_of, still_serves

# A bucket of this module's own (tests.test_events has "tts-events").
BUCKET = "tts-hardening"
DEEP = b"[" * 100_000 + b"]" * 100_000
ACCOUNT = "The account number is " + "1" * 40 + " thanks."


@pytest.fixture(scope="module")
def bucket(gcs: str) -> Bucket:
    return Bucket(gcs, BUCKET)


@pytest.fixture(scope="module")
def event_server(start_server: ServerFactory, gcs: str, bucket: Bucket) -> FunctionServer:
    return start_server(target="synthesize_event", **event_env(gcs, output=f"gs://{BUCKET}/{OUTPUT}"))


def post(server: FunctionServer, path: str, body: object, **kwargs: object) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, timeout=120, **kwargs)


def test_long_ogg_is_encoded_instead_of_crashing_the_worker(server: FunctionServer) -> None:
    # About 95 s of audio: one libsndfile write of it segfaulted in the Vorbis encoder.
    text = " ".join(f"Sentence number {n} is here to make this recording long enough." for n in range(24))
    response = post(server, "/synthesize?response=audio", {"text": text, "format": "ogg"})
    assert response.status_code == 200, response.text
    spoken = decode(response.content, "ogg")
    assert spoken.duration_s > 90
    assert_speech(spoken, RATE, min_s=90, max_s=400)
    still_serves(server)


def test_a_run_of_40_digits_is_read_digit_by_digit(server: FunctionServer, bucket: Bucket) -> None:
    response = post(server, "/synthesize?response=audio", {"text": ACCOUNT})
    assert response.status_code == 200, response.text
    # Forty digits at a few per second, not a one-word error.
    assert_speech(decode(response.content), RATE, min_s=8, max_s=60)
    grouped = "Card 1,111,111,111,111,111,111,111,111,111,111,111,111,111 ends here."
    assert post(server, "/synthesize", {"text": grouped}).status_code == 200


def test_superscript_and_circled_digits_are_read_not_a_500(server: FunctionServer) -> None:
    # Found by the fuzzer: hibari's number reader passed "¹" (a digit to str.isdigit) to int().
    for text in ("Ô-¹ and more.", "E = mc² and ① first."):
        response = post(server, "/synthesize?response=audio", {"text": text})
        assert response.status_code == 200, response.text
        assert_speech(decode(response.content), RATE, min_s=0.5, max_s=15)


def test_digits_through_the_event_path_succeed(event_server: FunctionServer, bucket: Bucket) -> None:
    name = f"digits/{uuid.uuid4().hex}"
    acknowledged(eventarc_pubsub({"text": ACCOUNT, "output": name}).to(event_server))
    assert bucket.manifest(f"{name}.wav.json")["status"] == "succeeded"


@pytest.mark.parametrize("path", ["/synthesize", "/v1/audio/speech"])
def test_bodies_that_python_cannot_parse_are_400(server: FunctionServer, path: str) -> None:
    headers = {"Content-Type": "application/json"}
    deep = requests.post(f"{server.url}{path}", data=DEEP, headers=headers, timeout=30)
    assert error_of(deep, 400)["code"] == "invalid_json"
    speed = (
        b'{"model": "tts-1", "voice": "alloy", "input": "Hi.", "text": "Hi.", "speed": ' + b"1" * 5000 + b"}"
    )
    assert error_of(requests.post(f"{server.url}{path}", data=speed, headers=headers, timeout=30), 400)
    still_serves(server)


def test_lone_surrogate_is_400_on_both_routes(server: FunctionServer) -> None:
    headers = {"Content-Type": "application/json"}
    speech = b'{"model": "tts-1", "voice": "alloy", "input": "\\ud800"}'
    error = error_of(
        requests.post(f"{server.url}/v1/audio/speech", data=speech, headers=headers, timeout=30), 400
    )
    assert error["field"] == "input"
    synthesize = requests.post(
        f"{server.url}/synthesize", data=b'{"text": "\\ud800"}', headers=headers, timeout=30
    )
    assert error_of(synthesize, 400)["field"] == "text"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "Hi.", "speed": True}, "speed"),
        ({"text": "Hi.", "speed": "1.5"}, "speed"),
        ({"text": "Hi.", "voice": ""}, "voice"),
        ({"text": "Hi.", "language": ""}, "language"),
    ],
)
def test_strict_fields(server: FunctionServer, body: dict, field: str) -> None:
    assert error_of(post(server, "/synthesize", body), 400)["field"] == field


def test_speed_true_is_400_on_the_openai_route(server: FunctionServer) -> None:
    body = {"model": "tts-1", "voice": "alloy", "input": "Hi.", "speed": True}
    assert error_of(post(server, "/v1/audio/speech", body), 400)["field"] == "speed"


def test_head_healthz_is_200_without_a_body(server: FunctionServer) -> None:
    response = requests.head(f"{server.url}/healthz", timeout=10)
    assert response.status_code == 200 and response.content == b""
    wrong = requests.get(f"{server.url}/synthesize", timeout=10)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "POST"
    assert requests.put(f"{server.url}/voices", timeout=10).headers["Allow"] == "GET, HEAD"


def test_deeply_nested_events_are_refused_not_retried(event_server: FunctionServer, bucket: Bucket) -> None:
    # As message data: a failed manifest, acknowledged.
    delivery = eventarc_pubsub(DEEP)
    acknowledged(delivery.to(event_server))
    record = bucket.manifest(f"jobs/{delivery.event_id}.json")
    assert record["status"] == "failed" and record["error"]["code"] == "invalid_json"
    # As the push body itself (functions-framework parses it before the function): a JSON 400.
    raw = requests.post(
        f"{event_server.url}/", data=DEEP, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert error_of(raw, 400)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("output", "why"),
    [
        ("a" * 300, "segment of 300 bytes"),
        ("ok/" + "b" * 256 + "/x", "inner segment of 256 bytes"),
        ("bad\x7fname", "DEL"),
        ("bad\x85name", "U+0085"),
        ("bad\u2028name", "U+2028"),
        ("bad\u202ename", "a bidi override"),
        (".meta/x", "the local store's metadata folder"),
        ("a/.hidden", "a hidden segment"),
    ],
)
def test_bad_output_names_are_recorded_failures(
    event_server: FunctionServer, bucket: Bucket, output: str, why: str
) -> None:
    delivery = eventarc_pubsub({"text": "Hello.", "output": output})
    acknowledged(delivery.to(event_server))
    record = bucket.manifest(f"jobs/{delivery.event_id}.json")
    assert record["status"] == "failed" and record["error"]["field"] == "output", why


def finalized(data: object, bucket: str = BUCKET) -> Delivery:
    event_id = str(uuid.uuid4().int)[:16]
    attributes = {
        "type": FINALIZED,
        "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        "id": event_id,
        "datacontenttype": "application/json",
    }
    headers, body = to_binary(CloudEvent(attributes, data))
    return Delivery(dict(headers), body, event_id)


@pytest.mark.parametrize(
    "data",
    [
        {"bucket": BUCKET, "name": 7},
        {"bucket": BUCKET, "name": ["inputs/a.txt"]},
        {"bucket": {"x": 1}, "name": "inputs/a.txt"},
        {"bucket": BUCKET, "name": "inputs/x/sized.txt", "size": "not a number"},
        {"bucket": BUCKET, "name": "inputs/x/sized.txt", "size": "١٢"},
        {"bucket": BUCKET, "name": "inputs/x/sized.txt", "size": [1]},
    ],
)
def test_malformed_storage_events_are_recorded_failures(
    event_server: FunctionServer, bucket: Bucket, data: dict
) -> None:
    delivery = finalized(data)
    acknowledged(delivery.to(event_server))
    names = [f"jobs/{delivery.event_id}.json", "x/sized.wav.json"]
    records = [
        r for r in map(_manifest_or_none(bucket), names) if r and r["source"]["id"] == delivery.event_id
    ]
    assert [r["status"] for r in records] == ["failed"]


def _manifest_or_none(bucket: Bucket):
    def read(name: str) -> dict | None:
        try:
            return bucket.manifest(name)
        except Exception:
            return None

    return read


def test_a_storage_event_for_another_bucket_is_ignored(
    event_server: FunctionServer, bucket: Bucket, gcs: str
) -> None:
    from tests.conftest import gcs_client

    other = f"foreign-{uuid.uuid4().hex[:8]}"
    gcs_client(gcs).create_bucket(other).blob("inputs/secret.txt").upload_from_string(b"Private text.")
    delivery = finalized({"bucket": other, "name": "inputs/secret.txt", "size": "13"}, other)
    acknowledged(delivery.to(event_server))
    [line] = event_logs(event_server, delivery.event_id)
    assert line["outcome"] == "ignored" and "input bucket" in line["message"]
    assert not bucket.blobs(f"{OUTPUT}/secret")


def test_meta_output_cannot_poison_the_local_cache(start_server: ServerFactory, tmp_path: Path) -> None:
    out = tmp_path / "out"
    http = start_server(TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari")
    text = f"Poison check {uuid.uuid4().hex[:6]}."
    first = post(http, "/synthesize", {"text": text}).json()
    events = start_server(target="synthesize_event", TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari")
    other = f"Another text {uuid.uuid4().hex[:6]}."
    delivery = eventarc_pubsub({"text": other, "output": f".meta/{first['object']}"})
    acknowledged(delivery.to(events))
    record = json.loads((out / "jobs" / f"{delivery.event_id}.json").read_text())
    assert record["status"] == "failed" and record["error"]["field"] == "output"
    again = post(http, "/synthesize", {"text": text})
    assert again.status_code == 200 and again.json()["cached"] is True


def test_missing_model_is_503_without_a_path_and_health_says_so(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    secret = tmp_path / "secret-model-location"
    server = start_server(
        TTS_OUTPUT_URI=str(tmp_path / "out"), TTS_ENGINES="cosyvoice", TTS_MODEL_DIR=str(secret)
    )
    assert requests.get(f"{server.url}/healthz", timeout=10).json()["status"] == "ok"  # not known yet
    response = post(server, "/synthesize", {"text": "Hello."})
    error = error_of(response, 503)
    assert error["code"] == "model_unavailable" and str(secret) not in response.text
    assert "secret-model-location" not in response.text
    health = requests.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 503 and health.json()["status"] == "unavailable"
    assert "secret-model-location" not in health.text
    assert "secret-model-location" in server.logs()  # the cause is in the log


def broken_model_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "hibari-home"
    home.mkdir()
    (home / "bf_emma.int8.onnx").write_bytes(b"not an onnx model")
    return {"HIBARI_HOME": str(home), "TTS_ENGINES": "hibari", "TTS_MAX_DELIVERY_ATTEMPTS": "5"}


def test_poison_messages_are_given_up_with_a_failed_manifest(
    start_server: ServerFactory, gcs: str, tmp_path: Path, bucket: Bucket
) -> None:
    prefix = f"poison-{uuid.uuid4().hex}"
    server = start_server(
        target="synthesize_event",
        **event_env(gcs, output=f"gs://{BUCKET}/{prefix}", **broken_model_env(tmp_path)),
    )
    early = raw_push({"text": "The model is broken."})
    body = json.loads(early.body) | {"deliveryAttempt": 2}
    assert requests.post(f"{server.url}{early.path}", json=body, timeout=60).status_code == 500
    assert not bucket.blobs(f"{prefix}/")

    # The subscription's last attempt: recorded and acknowledged instead of dead-lettered unread.
    body["deliveryAttempt"] = 5
    acknowledged(requests.post(f"{server.url}{early.path}", json=body, timeout=60))
    record = json.loads(bucket.read(f"{prefix}/jobs/{early.event_id}.json"))
    assert record["status"] == "failed" and record["error"]["code"] == "model_unavailable"
    assert "gave up" in record["error"]["message"]
    assert [line["outcome"] for line in event_logs(server, early.event_id)] == ["retry", "gave_up"]
    # A redelivery after that finds the manifest: a duplicate.
    acknowledged(requests.post(f"{server.url}{early.path}", json=body, timeout=60))

    # No attempt count (Eventarc's storage trigger): the event's age bounds the retries.
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).isoformat()
    stale = eventarc_pubsub({"text": "Still broken.", "output": "stale"}, time=old)
    acknowledged(stale.to(server))
    assert json.loads(bucket.read(f"{prefix}/stale.wav.json"))["status"] == "failed"


def test_raw_push_data_is_base64(event_server: FunctionServer, bucket: Bucket) -> None:
    # A push whose data is not base64 is a recorded failure, not a retry.
    delivery = raw_push({"text": "x"})
    body = json.loads(delivery.body)
    body["message"]["data"] = "%%%" + base64.b64encode(b"{}").decode()
    acknowledged(requests.post(f"{event_server.url}{delivery.path}", json=body, timeout=60))
    assert bucket.manifest(f"jobs/{delivery.event_id}.json")["error"]["code"] == "invalid_json"
