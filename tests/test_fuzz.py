"""Fuzzing, bounded for CI (about a minute here): the HTTP API from its own OpenAPI document
(Schemathesis: no 5xx, every status and body as documented, invalid input refused), and the event
target with Hypothesis over Pub/Sub messages and storage payloads (no 5xx without an injected
fault; every event not ignored leaves its manifest; nothing written outside the output prefix)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import FunctionServer, ServerFactory, fake_gcs, gcs_client
from tests.test_events import Delivery, eventarc_pubsub, raw_push
from tests.test_hardening import finalized
from tests.test_http_api import log_lines

# Examples per operation and generation mode (HTTP), and per event kind.
HTTP_EXAMPLES = 60
EVENT_EXAMPLES = 60
FUZZ = settings(
    max_examples=EVENT_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
FUZZ_BUCKET = "tts-fuzz"
OUTPUT = "audio"


@pytest.fixture(scope="module")
def fuzz_server(start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> FunctionServer:
    out = str(tmp_path_factory.mktemp("fuzz-out"))
    # A real event instance behind POST /jobs, so fuzzed jobs are published and run, not refused.
    parts = start_server("synthesize_event", TTS_OUTPUT_URI=out, TTS_ENGINES="hibari")
    return start_server(TTS_OUTPUT_URI=out, TTS_ENGINES="hibari", TTS_JOBS_PUSH_URLS=parts.url)


def test_openapi_document_is_served_from_the_request_models(fuzz_server: FunctionServer) -> None:
    document = requests.get(f"{fuzz_server.url}/openapi.json", timeout=10).json()
    schemas = document["components"]["schemas"]
    assert schemas["SynthesizeRequest"]["additionalProperties"] is False
    assert set(schemas["SynthesizeRequest"]["properties"]) == {
        *("text", "voice", "speed", "format", "language"),
        *("ssml", "text_type", "lexicons", "marks", "subtitles"),
    }
    assert schemas["OpenAISpeechRequest"]["required"] == ["model", "input", "voice"]
    assert set(document["paths"]) == {
        "/synthesize",
        "/v1/audio/speech",
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/audio",
        "/audio/{name}",
        "/voices",
        "/healthz",
        "/openapi.json",
    }


def test_http_api_fuzzed_from_its_openapi_document(fuzz_server: FunctionServer) -> None:
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import (
        content_type_conformance,
        negative_data_rejection,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]
    schema = schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")
    counts: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        has_input = bool(operation.body or operation.query)
        modes = (
            (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if has_input else (GenerationMode.POSITIVE,)
        )
        for mode in modes:
            examples = HTTP_EXAMPLES if has_input else 3
            counts[f"{operation.label} {mode.value}"] = fuzz(operation, mode, examples, checks)
    print(f"\nschemathesis inputs: {sum(counts.values())} {counts}")
    assert sum(counts.values()) >= 4 * HTTP_EXAMPLES * 0.5


def fuzz(operation: object, mode: object, examples: int, checks: list) -> int:
    """Run ``examples`` generated cases of one operation; returns how many were sent."""
    sent = [0]

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))  # type: ignore[attr-defined]
    def call(case: object) -> None:
        sent[0] += 1
        case.call_and_validate(checks=checks, timeout=60)  # type: ignore[attr-defined]

    call()
    return sent[0]


@pytest.fixture
def fuzz_emulator() -> Iterator[str]:
    """A fake-gcs-server of the test's own, so the fuzzed objects stay apart from other tests'."""
    with fake_gcs() as emulator:
        yield emulator.url


@pytest.fixture
def fuzz_bucket(fuzz_emulator: str) -> object:
    bucket = gcs_client(fuzz_emulator).create_bucket(FUZZ_BUCKET)
    for name, data in {
        "inputs/ok.txt": b"A dropped file.",
        "inputs/req.json": json.dumps({"text": "Hi there.", "format": "mp3"}).encode(),
        "inputs/bad.json": b"[" * 5000,
        "inputs/latin1.txt": "caf\xe9".encode("latin-1"),
    }.items():
        bucket.blob(name).upload_from_string(data)
    return bucket


@pytest.fixture
def fuzz_events(start_server: ServerFactory, fuzz_emulator: str, fuzz_bucket: object) -> FunctionServer:
    return start_server(
        target="synthesize_event",
        TTS_OUTPUT_URI=f"gs://{FUZZ_BUCKET}/{OUTPUT}",
        STORAGE_EMULATOR_HOST=fuzz_emulator,
        TTS_ENGINES="hibari",
    )


def outside_output(bucket: object) -> set[str]:
    return {b.name for b in bucket.client.list_blobs(FUZZ_BUCKET) if not b.name.startswith(f"{OUTPUT}/")}  # type: ignore[attr-defined]


def deliver_and_check(server: FunctionServer, bucket: object, delivery: Delivery) -> str:
    response = requests.post(
        f"{server.url}{delivery.path}", headers=delivery.headers, data=delivery.body, timeout=60
    )
    assert response.status_code < 500, response.text
    lines = [line for line in log_lines(server) if line.get("event_id") == delivery.event_id]
    if response.status_code >= 400:  # refused before the function (not a CloudEvent): nothing written
        assert not lines
        return "refused"
    [line] = lines
    if line["outcome"] != "ignored":
        prefix = f"gs://{FUZZ_BUCKET}/{OUTPUT}/"
        assert line["manifest"].startswith(prefix)
        blob = bucket.blob(line["manifest"].removeprefix(f"gs://{FUZZ_BUCKET}/"))  # type: ignore[attr-defined]
        assert json.loads(blob.download_as_bytes())["status"] in ("succeeded", "failed")
    return line["outcome"]


names = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["a/b", ".meta/x", "../x", "x/../../y", "/abs", "jobs/x", "a" * 300, "ok.wav", "x.mp3"]),
)
texts = st.one_of(
    st.text(max_size=40), st.sampled_from(["Hello.", "1" * 45, "Dr. Smith's 3rd $5.", "你好。", "\u0301"])
)
requests_ = st.fixed_dictionaries(
    {},
    optional={
        "text": texts,
        "voice": st.one_of(st.none(), st.text(max_size=8), st.just("heart")),
        "speed": st.one_of(st.floats(allow_nan=True), st.integers(), st.booleans(), st.text(max_size=4)),
        "format": st.one_of(
            st.sampled_from(["wav", "mp3", "ogg", "opus", "flac", "pcm", "aac"]), st.text(max_size=5)
        ),
        "language": st.one_of(st.none(), st.text(max_size=6)),
        "output": names,
        "job_id": st.one_of(st.text(max_size=20), st.just("job-1")),
        "extra": st.integers(),
    },
)
# Mostly valid requests too, so that the fuzzing reaches synthesis, naming and the manifests.
plausible = st.fixed_dictionaries(
    {"text": st.sampled_from(["Hello.", "Call 555 0100.", "1" * 45, "Dr. Smith's 3rd $5.", "Hi"])},
    optional={
        "output": names,
        "format": st.sampled_from(["wav", "mp3", "ogg", "pcm", "aac"]),
        "job_id": names,
    },
)
message_data = st.one_of(
    plausible,
    requests_,
    st.binary(max_size=64),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5), st.lists, max_leaves=8),
)


def test_pubsub_messages_fuzzed(fuzz_events: FunctionServer, fuzz_bucket: object) -> None:
    before = outside_output(fuzz_bucket)
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(data=message_data, raw=st.booleans())
    def deliver(data: object, raw: bool) -> None:
        delivery = (raw_push if raw else eventarc_pubsub)(data, str(uuid.uuid4().int)[:16])
        outcome = deliver_and_check(fuzz_events, fuzz_bucket, delivery)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    deliver()
    print(f"\npub/sub inputs: {sum(outcomes.values())} {outcomes}")
    assert outside_output(fuzz_bucket) == before


storage_data = st.fixed_dictionaries(
    {},
    optional={
        "bucket": st.one_of(st.just(FUZZ_BUCKET), st.text(max_size=10), st.integers(), st.none()),
        "name": st.one_of(
            st.sampled_from(["inputs/ok.txt", "inputs/req.json", "inputs/bad.json", "inputs/latin1.txt"]),
            st.builds(lambda s: f"inputs/{s}", st.text(max_size=20)),
            st.text(max_size=20),
            st.integers(),
            st.lists(st.text(max_size=3), max_size=2),
        ),
        "size": st.one_of(st.none(), st.integers(), st.text(max_size=6), st.floats(), st.booleans()),
        "contentType": st.text(max_size=10),
    },
)


def test_storage_events_fuzzed(fuzz_events: FunctionServer, fuzz_bucket: object) -> None:
    before = outside_output(fuzz_bucket)
    outcomes: dict[str, int] = {}

    @FUZZ
    @given(data=st.one_of(storage_data, st.none(), st.integers(), st.lists(st.integers(), max_size=3)))
    def deliver(data: object) -> None:
        outcome = deliver_and_check(fuzz_events, fuzz_bucket, finalized(data, FUZZ_BUCKET))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    deliver()
    print(f"\nstorage-event inputs: {sum(outcomes.values())} {outcomes}")
    assert outside_output(fuzz_bucket) == before
