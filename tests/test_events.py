"""The event target end to end: CloudEvents as Eventarc sends them (and raw Pub/Sub push bodies)
POSTed to a real functions-framework server, inputs and outputs in fake-gcs-server through
google-cloud-storage, and the audio decoded."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from tests import log_contract as contract
from tests.audio_checks import Decoded, assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory, gcs_client, post_at_once
from tests.test_http_api import log_lines

BUCKET = "tts-events"
OUTPUT = "audio"
PROJECT = "test-project"
TOPIC = f"projects/{PROJECT}/topics/tts-requests"
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/eventarc-tts"
PUBSUB = "google.cloud.pubsub.topic.v1.messagePublished"
FINALIZED = "google.cloud.storage.object.v1.finalized"
SENTENCE = "Events turn this sentence into audio, exactly once in effect."
RATE = 24_000


@dataclass(frozen=True)
class Delivery:
    """One HTTP push of an event: what Eventarc or a Pub/Sub push subscription POSTs."""

    headers: dict[str, str]
    body: bytes
    event_id: str
    path: str = "/"

    def to(self, server: FunctionServer) -> requests.Response:
        return requests.post(f"{server.url}{self.path}", headers=self.headers, data=self.body, timeout=120)


def pubsub_message(data: object, message_id: str | None = None) -> dict:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    message_id = message_id or str(uuid.uuid4().int)[:16]
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "data": base64.b64encode(raw).decode(),
        "attributes": {"origin": "test"},
        # Eventarc sends both spellings of these two fields.
        "messageId": message_id,
        "message_id": message_id,
        "publishTime": now,
        "publish_time": now,
    }


def eventarc_pubsub(data: object, message_id: str | None = None, **extensions: str) -> Delivery:
    """Eventarc's Pub/Sub trigger: a binary-mode CloudEvent whose id is the message id."""
    message = pubsub_message(data, message_id)
    event = CloudEvent(
        {
            "type": PUBSUB,
            "source": f"//pubsub.googleapis.com/{TOPIC}",
            "id": message["messageId"],
            "datacontenttype": "application/json",
            **extensions,
        },
        {"message": message, "subscription": SUBSCRIPTION},
    )
    headers, body = to_binary(event)
    return Delivery(dict(headers), body, message["messageId"])


def raw_push(data: object, message_id: str | None = None) -> Delivery:
    """A plain Pub/Sub push subscription: a JSON envelope, no CloudEvent headers."""
    message = pubsub_message(data, message_id)
    body = json.dumps({"message": message, "subscription": SUBSCRIPTION}).encode()
    # Push endpoints may carry the topic in the path; functions-framework reads it from there.
    return Delivery({"Content-Type": "application/json"}, body, message["messageId"], f"/{TOPIC}")


class Bucket:
    """The events bucket, seen through google-cloud-storage: inputs in, audio and manifests out."""

    def __init__(self, gcs: str, name: str = BUCKET) -> None:
        self.client = gcs_client(gcs)
        self.name = name
        self.client.create_bucket(name)

    def upload(self, name: str, data: bytes, content_type: str = "text/plain") -> None:
        self.client.bucket(self.name).blob(name).upload_from_string(data, content_type=content_type)

    def blobs(self, prefix: str) -> dict[str, Any]:
        return {b.name: b for b in self.client.list_blobs(self.name, prefix=prefix)}

    def audio_names(self, prefix: str = f"{OUTPUT}/") -> set[str]:
        return {name for name in self.blobs(prefix) if not name.endswith(".json")}

    def read(self, name: str) -> bytes:
        return self.client.bucket(self.name).blob(name).download_as_bytes()

    def manifest(self, name: str) -> dict:
        return json.loads(self.read(f"{OUTPUT}/{name}"))

    def audio(self, name: str, fmt: str = "wav") -> Decoded:
        return decode(self.read(f"{OUTPUT}/{name}"), fmt)

    def finalized(self, name: str, event_type: str = FINALIZED) -> Delivery:
        """Eventarc's Cloud Storage trigger: the object resource, as GCS reports it, is the data."""
        blob = self.client.bucket(self.name).get_blob(name)
        event_id = str(uuid.uuid4().int)[:16]
        event = CloudEvent(
            {
                "type": event_type,
                "source": f"//storage.googleapis.com/projects/_/buckets/{self.name}",
                "subject": f"objects/{name}",
                "id": event_id,
                "datacontenttype": "application/json",
            },
            dict(blob._properties),  # bucket, name, contentType, size, generation, md5Hash...
        )
        headers, body = to_binary(event)
        return Delivery(dict(headers), body, event_id)


@pytest.fixture(scope="session")
def bucket(gcs: str) -> Bucket:
    return Bucket(gcs)


def event_env(gcs: str, output: str = f"gs://{BUCKET}/{OUTPUT}", **env: str) -> dict[str, str]:
    return {"TTS_OUTPUT_URI": output, "STORAGE_EMULATOR_HOST": gcs, **env}


@pytest.fixture(scope="session")
def event_server(start_server: ServerFactory, gcs: str, bucket: Bucket) -> FunctionServer:
    """The event service as deployed: input under inputs/, audio under audio/ in one bucket."""
    return start_server(target="synthesize_event", **event_env(gcs))


@pytest.fixture(scope="session")
def limits_server(start_server: ServerFactory, gcs: str, bucket: Bucket) -> FunctionServer:
    """Tight limits: 400 characters, and a 10 s timeout at 0.05 s/char (160 characters fit)."""
    return start_server(
        target="synthesize_event",
        **event_env(gcs, TTS_MAX_EVENT_CHARS="400", TTS_EVENT_TIMEOUT_S="10", TTS_SECONDS_PER_CHAR="0.05"),
    )


def event_logs(server: FunctionServer, event_id: str) -> list[dict]:
    return [e for e in log_lines(server) if e.get("event_id") == event_id]


def acknowledged(response: requests.Response) -> None:
    assert 200 <= response.status_code < 300, response.text


def test_pubsub_message_becomes_audio_and_a_manifest_beside_it(
    event_server: FunctionServer, bucket: Bucket
) -> None:
    name = f"reports/{uuid.uuid4().hex}"
    trace = uuid.uuid4().hex
    delivery = eventarc_pubsub(
        {"text": SENTENCE, "output": name, "job_id": "report-1", "speed": 1.1},
        traceparent=f"00-{trace}-00f067aa0ba902b7-01",  # the W3C trace context extension
    )
    acknowledged(delivery.to(event_server))

    spoken = bucket.audio(f"{name}.wav")
    assert_speech(spoken, RATE, min_s=1.5, max_s=10)
    record = bucket.manifest(f"{name}.wav.json")
    assert record["status"] == "succeeded"
    assert record["uri"] == f"gs://{BUCKET}/{OUTPUT}/{name}.wav"
    assert record["duration_s"] == pytest.approx(spoken.duration_s, abs=0.01)
    assert {
        "voice": "heart",
        "engine": "hibari",
        "speed": 1.1,
        "job_id": "report-1",
    }.items() <= record.items()
    assert record["chars"] == len(SENTENCE) and record["timings"]["synthesis_ms"] > 0
    assert record["source"] == {
        "id": delivery.event_id,
        "type": PUBSUB,
        "subject": None,
        "source": f"//pubsub.googleapis.com/{TOPIC}",
    }
    [line] = event_logs(event_server, delivery.event_id)
    assert line["severity"] == "INFO" and line["outcome"] == "done" and line["event_type"] == PUBSUB
    assert line["synthesis_ms"] > 0 and line["latency_ms"] > 0 and line["chars"] == len(SENTENCE)
    assert line["logging.googleapis.com/trace"] == trace and "text" not in line


def test_the_event_log_line_has_exactly_the_contracted_fields(
    event_server: FunctionServer, bucket: Bucket
) -> None:
    acknowledged(eventarc_pubsub({"text": f"Warm up {uuid.uuid4().hex}."}).to(event_server))  # no load_ms
    name = uuid.uuid4().hex
    done = eventarc_pubsub({"text": f"Pin the event fields of {name[:6]}.", "output": name})
    acknowledged(done.to(event_server))
    [line] = event_logs(event_server, done.event_id)
    assert set(line) == contract.EVENT | {"manifest"} | contract.SYNTHESIZED
    assert (line["severity"], line["outcome"], line["message"]) == ("INFO", "done", "event done")

    failed = eventarc_pubsub({"text": "Hello.", "voice": "nobody"})
    acknowledged(failed.to(event_server))
    [line] = event_logs(event_server, failed.event_id)
    assert set(line) == contract.EVENT | {"manifest"} | contract.ERROR
    assert (line["severity"], line["outcome"], line["error"]) == ("WARNING", "failed", "unknown_voice")


def test_message_without_output_is_content_addressed_with_manifest_under_jobs(
    event_server: FunctionServer, bucket: Bucket
) -> None:
    text = f"No output name was given for job {uuid.uuid4().hex[:8]}."
    by_id = eventarc_pubsub({"text": text, "format": "flac"})
    acknowledged(by_id.to(event_server))
    record = bucket.manifest(f"jobs/{by_id.event_id}.json")
    assert record["status"] == "succeeded" and record["format"] == "flac"
    obj = record["object"]
    assert len(obj) == len("0" * 40 + ".flac") and record["uri"].endswith(f"/{OUTPUT}/{obj}")
    assert_speech(bucket.audio(obj, "flac"), RATE)

    # The same text under a job id: the audio is already there, the job gets its own manifest.
    by_job = eventarc_pubsub({"text": text, "format": "flac", "job_id": f"job-{by_id.event_id}"})
    acknowledged(by_job.to(event_server))
    again = bucket.manifest(f"jobs/job-{by_id.event_id}.json")
    assert again["object"] == obj and again["cached"] is True and again["job_id"] == f"job-{by_id.event_id}"


def test_raw_pubsub_push_body_is_served_like_eventarc(event_server: FunctionServer, bucket: Bucket) -> None:
    name = f"push/{uuid.uuid4().hex}"
    delivery = raw_push({"text": "A plain push subscription works too.", "output": name, "format": "ogg"})
    assert "ce-id" not in {k.lower() for k in delivery.headers}
    acknowledged(delivery.to(event_server))
    assert_speech(bucket.audio(f"{name}.ogg", "ogg"), RATE)
    record = bucket.manifest(f"{name}.ogg.json")
    assert record["source"]["id"] == delivery.event_id and record["source"]["type"] == PUBSUB
    assert record["source"]["source"] == f"//pubsub.googleapis.com/{TOPIC}"


def test_duplicate_deliveries_yield_one_audio_and_one_manifest(
    event_server: FunctionServer, bucket: Bucket
) -> None:
    prefix = f"dup-{uuid.uuid4().hex}"
    body = {"text": "Delivered more than once, written once.", "output": f"{prefix}/once"}
    first = eventarc_pubsub(body)
    acknowledged(first.to(event_server))
    written = {name: (b.generation, b.md5_hash) for name, b in bucket.blobs(f"{OUTPUT}/{prefix}/").items()}
    assert set(written) == {f"{OUTPUT}/{prefix}/once.wav", f"{OUTPUT}/{prefix}/once.wav.json"}

    # Redelivered by Eventarc, then the same message through a push subscription (same id).
    acknowledged(first.to(event_server))
    acknowledged(raw_push(body, message_id=first.event_id).to(event_server))
    assert {
        name: (b.generation, b.md5_hash) for name, b in bucket.blobs(f"{OUTPUT}/{prefix}/").items()
    } == written
    outcomes = [line["outcome"] for line in event_logs(event_server, first.event_id)]
    assert outcomes == ["done", "duplicate", "duplicate"]


def test_two_instances_racing_on_one_event_write_once(
    start_server: ServerFactory, event_server: FunctionServer, gcs: str, bucket: Bucket
) -> None:
    twin = start_server(target="synthesize_event", **event_env(gcs))
    for server in (event_server, twin):  # both warm, so both are synthesizing when they collide
        acknowledged(
            eventarc_pubsub({"text": "Warming up.", "output": f"warm/{uuid.uuid4().hex}"}).to(server)
        )
    prefix = f"race-{uuid.uuid4().hex}"
    # Long enough (about a second of synthesis) that both instances pass the manifest check.
    text = " ".join(f"Sentence {n} of the text that two instances receive at once." for n in range(25))
    delivery = eventarc_pubsub({"text": text, "output": f"{prefix}/x"})
    responses = post_at_once([event_server.url, twin.url], headers=delivery.headers, data=delivery.body)
    for response in responses:
        acknowledged(response)
    written = bucket.blobs(f"{OUTPUT}/{prefix}/")
    assert set(written) == {f"{OUTPUT}/{prefix}/x.wav", f"{OUTPUT}/{prefix}/x.wav.json"}
    assert all(b.metageneration == 1 for b in written.values())
    assert_speech(bucket.audio(f"{prefix}/x.wav"), RATE, min_s=20, max_s=120)
    assert bucket.manifest(f"{prefix}/x.wav.json")["source"]["id"] == delivery.event_id
    # Both really raced: both synthesized, and the loser of the write reported the winner's audio.
    lines = [line for server in (event_server, twin) for line in event_logs(server, delivery.event_id)]
    assert sorted((line["outcome"], line["cached"]) for line in lines) == [("done", False), ("done", True)]
    assert all(line["synthesis_ms"] > 0 for line in lines)


def test_dropped_text_file_becomes_audio_named_after_it(event_server: FunctionServer, bucket: Bucket) -> None:
    folder = f"drop-{uuid.uuid4().hex}"
    name = f"inputs/{folder}/chapter one.txt"
    bucket.upload(name, "\ufeffA text file dropped in the bucket.\nIt has two lines.".encode())
    delivery = bucket.finalized(name)
    acknowledged(delivery.to(event_server))

    assert_speech(bucket.audio(f"{folder}/chapter one.wav"), RATE, min_s=2)
    record = bucket.manifest(f"{folder}/chapter one.wav.json")
    assert record["status"] == "succeeded" and record["input"] == f"gs://{BUCKET}/{name}"
    assert record["source"]["subject"] == f"objects/{name}" and record["source"]["type"] == FINALIZED


def test_dropped_json_request_picks_voice_and_format(event_server: FunctionServer, bucket: Bucket) -> None:
    folder = f"drop-{uuid.uuid4().hex}"
    request = {"text": "A JSON request dropped in the bucket.", "format": "mp3", "speed": 0.9, "job_id": "j7"}
    bucket.upload(f"inputs/{folder}/req.json", json.dumps(request).encode(), "application/json")
    acknowledged(bucket.finalized(f"inputs/{folder}/req.json").to(event_server))
    assert_speech(bucket.audio(f"{folder}/req.mp3", "mp3"), RATE)
    record = bucket.manifest(f"{folder}/req.mp3.json")
    assert record["format"] == "mp3" and record["speed"] == 0.9 and record["job_id"] == "j7"


@pytest.mark.parametrize(
    ("name", "event_type", "why"),
    [
        ("elsewhere/{id}.txt", FINALIZED, "outside the input prefix"),
        ("inputs/{id}.md", FINALIZED, "is not a .txt, .ssml or .json file"),
        ("inputs/{id}.wav", FINALIZED, "is not a .txt, .ssml or .json file"),
        ("inputs/{id}.txt", "google.cloud.storage.object.v1.deleted", "is not handled"),
    ],
)
def test_objects_not_for_us_are_acknowledged_and_ignored(
    event_server: FunctionServer, name: str, event_type: str, why: str, bucket: Bucket
) -> None:
    name = name.format(id=uuid.uuid4().hex)
    bucket.upload(name, b"Not meant to be spoken.")
    before = bucket.blobs(f"{OUTPUT}/")
    delivery = bucket.finalized(name, event_type)
    acknowledged(delivery.to(event_server))
    assert bucket.blobs(f"{OUTPUT}/").keys() == before.keys()
    [line] = event_logs(event_server, delivery.event_id)
    assert line["severity"] == "INFO" and line["outcome"] == "ignored" and why in line["message"]


def test_outputs_under_the_input_prefix_never_retrigger(
    start_server: ServerFactory, gcs: str, bucket: Bucket
) -> None:
    # Audio written inside the watched folder: every object the function writes fires an event.
    server = start_server(target="synthesize_event", **event_env(gcs, output=f"gs://{BUCKET}/inputs/spoken"))
    folder = f"loop-{uuid.uuid4().hex}"
    bucket.upload(f"inputs/{folder}/a.txt", b"Spoken once, not again and again.")
    acknowledged(bucket.finalized(f"inputs/{folder}/a.txt").to(server))
    outputs = bucket.blobs(f"inputs/spoken/{folder}/")
    assert set(outputs) == {f"inputs/spoken/{folder}/a.wav", f"inputs/spoken/{folder}/a.wav.json"}
    for name in outputs:
        delivery = bucket.finalized(name)
        acknowledged(delivery.to(server))
        [line] = event_logs(server, delivery.event_id)
        assert line["outcome"] == "ignored" and "own output" in line["message"]
    assert bucket.blobs(f"inputs/spoken/{folder}/").keys() == outputs.keys()


PERMANENT = {
    "invalid JSON": (b"{not json", "invalid_json", "message.data"),
    "missing text": ({"voice": "heart"}, "invalid_field", "text"),
    "unknown voice": ({"text": "Hello.", "voice": "nobody"}, "unknown_voice", "voice"),
    "unknown field": ({"text": "Hello.", "colour": "blue"}, "invalid_field", "colour"),
    "path escape": ({"text": "Hello.", "output": "../escape"}, "invalid_field", "output"),
    "absolute path": ({"text": "Hello.", "output": "/etc/x"}, "invalid_field", "output"),
    "extension of another format": ({"text": "Hello.", "output": "a.mp3"}, "invalid_field", "output"),
    "bad job id": ({"text": "Hello.", "job_id": "a/b"}, "invalid_field", "job_id"),
    "unsupported format": ({"text": "Hello.", "format": "aac"}, "unsupported_format", "format"),
    "speed out of range": ({"text": "Hello.", "speed": 3.0}, "invalid_field", "speed"),
}


@pytest.mark.parametrize("case", PERMANENT)
def test_permanent_errors_are_recorded_and_acknowledged(
    event_server: FunctionServer, case: str, bucket: Bucket
) -> None:
    data, code, field = PERMANENT[case]
    before = bucket.audio_names()
    delivery = eventarc_pubsub(data)
    acknowledged(delivery.to(event_server))
    record = bucket.manifest(f"jobs/{delivery.event_id}.json")
    assert record["status"] == "failed" and "uri" not in record
    assert record["error"]["code"] == code and record["error"]["field"] == field
    assert record["source"]["id"] == delivery.event_id
    assert bucket.audio_names() == before
    [line] = event_logs(event_server, delivery.event_id)
    assert line["severity"] == "WARNING" and line["outcome"] == "failed" and line["error"] == code


@pytest.mark.parametrize(
    ("chars", "code"), [(401, "text_too_long"), (200, "text_too_long_for_timeout"), (150, None)]
)
def test_event_text_limits(
    limits_server: FunctionServer, chars: int, code: str | None, bucket: Bucket
) -> None:
    text = ("Words and more words. " * 30)[:chars].strip() + "."
    text = text[:chars]
    name = f"limits/{uuid.uuid4().hex}"
    acknowledged(eventarc_pubsub({"text": text, "output": name}).to(limits_server))
    record = bucket.manifest(f"{name}.wav.json")
    if code is None:
        assert record["status"] == "succeeded"
        assert_speech(bucket.audio(f"{name}.wav"), RATE, min_s=5)
    else:
        assert record["status"] == "failed" and record["error"]["code"] == code
        assert not bucket.audio_names(f"{OUTPUT}/{name}")


BAD_FILES = {
    "not UTF-8": ("latin1.txt", "Caf\xe9 au lait.".encode("latin-1"), "latin1.wav.json", "undecodable_input"),
    "not JSON": ("broken.json", b'{"text": "unfinished', "broken.wav.json", "invalid_json"),
    "unknown voice": (
        "voice.json",
        b'{"text": "Hi.", "voice": "nobody", "format": "mp3"}',
        "voice.mp3.json",
        "unknown_voice",
    ),
    "empty": ("empty.txt", b"  \n", "empty.wav.json", "empty_text"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_recorded_and_acknowledged(
    event_server: FunctionServer, bucket: Bucket, case: str
) -> None:
    filename, content, manifest_name, code = BAD_FILES[case]
    folder = f"bad-{uuid.uuid4().hex}"
    bucket.upload(f"inputs/{folder}/{filename}", content)
    acknowledged(bucket.finalized(f"inputs/{folder}/{filename}").to(event_server))
    record = bucket.manifest(f"{folder}/{manifest_name}")
    assert record["status"] == "failed" and record["error"]["code"] == code
    assert record["input"] == f"gs://{BUCKET}/inputs/{folder}/{filename}"
    assert not bucket.audio_names(f"{OUTPUT}/{folder}/")


def test_file_too_large_for_the_limit_is_refused(limits_server: FunctionServer, bucket: Bucket) -> None:
    folder = f"big-{uuid.uuid4().hex}"
    bucket.upload(f"inputs/{folder}/big.txt", b"Far too long. " * 200)  # 2800 bytes > 4 x 400
    acknowledged(bucket.finalized(f"inputs/{folder}/big.txt").to(limits_server))
    record = bucket.manifest(f"{folder}/big.wav.json")
    assert record["status"] == "failed" and record["error"]["field"] == "input"
    assert "2800 bytes" in record["error"]["message"]
    assert not bucket.audio_names(f"{OUTPUT}/{folder}/")


def test_output_holding_other_audio_is_a_recorded_conflict(
    event_server: FunctionServer, bucket: Bucket
) -> None:
    name = f"clash-{uuid.uuid4().hex}/x"
    first = eventarc_pubsub({"text": "The first text claims this name.", "output": name})
    acknowledged(first.to(event_server))
    kept = bucket.blobs(f"{OUTPUT}/{name}.wav")[f"{OUTPUT}/{name}.wav"].generation

    second = eventarc_pubsub({"text": "A second, different text wants it too.", "output": name})
    acknowledged(second.to(event_server))
    assert bucket.blobs(f"{OUTPUT}/{name}.wav")[f"{OUTPUT}/{name}.wav"].generation == kept
    assert bucket.manifest(f"{name}.wav.json")["source"]["id"] == first.event_id
    # The name beside the audio is the first job's, so the conflict is recorded under jobs/.
    record = bucket.manifest(f"jobs/{second.event_id}.json")
    assert record["status"] == "failed" and record["error"]["code"] == "output_exists"


def test_a_reused_job_id_still_gets_its_own_manifest(event_server: FunctionServer, bucket: Bucket) -> None:
    # Found by the fuzzer: when the name beside the audio and the caller's job id are both another
    # event's, the manifest goes under the event's own id rather than nowhere.
    name, job = f"reuse-{uuid.uuid4().hex}/x", f"job-{uuid.uuid4().hex[:8]}"
    events = [
        eventarc_pubsub({"text": f"Text number {n} wants this name.", "output": name, "job_id": job})
        for n in (1, 2, 3)
    ]
    for event in events:
        acknowledged(event.to(event_server))
    first, second, third = events
    assert bucket.manifest(f"{name}.wav.json")["source"]["id"] == first.event_id
    assert bucket.manifest(f"jobs/{job}.json")["source"]["id"] == second.event_id
    record = bucket.manifest(f"jobs/{third.event_id}.json")
    assert record["source"]["id"] == third.event_id
    assert record["status"] == "failed" and record["error"]["code"] == "output_exists"
    [line] = event_logs(event_server, third.event_id)
    assert line["manifest"].endswith(f"/jobs/{third.event_id}.json")


def test_missing_output_bucket_is_retried_until_it_exists(start_server: ServerFactory, gcs: str) -> None:
    later = f"later-{uuid.uuid4().hex[:12]}"
    server = start_server(target="synthesize_event", **event_env(gcs, output=f"gs://{later}/audio"))
    delivery = eventarc_pubsub({"text": "Storage is not there yet.", "output": "late"})
    response = delivery.to(server)
    assert response.status_code >= 500  # the platform redelivers with backoff
    [line] = event_logs(server, delivery.event_id)
    assert line["severity"] == "ERROR" and line["outcome"] == "retry"

    gcs_client(gcs).create_bucket(later)
    acknowledged(delivery.to(server))
    written = {b.name for b in gcs_client(gcs).list_blobs(later)}
    assert written == {"audio/late.wav", "audio/late.wav.json"}
    assert_speech(decode(gcs_client(gcs).bucket(later).blob("audio/late.wav").download_as_bytes()), RATE)


def test_model_that_cannot_load_is_retried_and_writes_nothing(
    start_server: ServerFactory, gcs: str, tmp_path: Path, bucket: Bucket
) -> None:
    # A real broken model: a corrupt voice file where hibari looks for baked-in voices.
    home = tmp_path / "hibari-home"
    home.mkdir()
    (home / "bf_emma.int8.onnx").write_bytes(b"not an onnx model")
    prefix = f"broken-{uuid.uuid4().hex}"
    server = start_server(
        target="synthesize_event", **event_env(gcs, output=f"gs://{BUCKET}/{prefix}", HIBARI_HOME=str(home))
    )
    delivery = eventarc_pubsub({"text": "The model is broken."})
    assert delivery.to(server).status_code >= 500
    assert not bucket.blobs(f"{prefix}/")
    assert event_logs(server, delivery.event_id)[-1]["outcome"] == "retry"
