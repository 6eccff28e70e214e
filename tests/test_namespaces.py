"""Issue 24, defects 1 and 2: a caller-named output cannot reach the service's own names (the
job machinery under jobs/, content addresses), through the real event target and HTTP routes;
and an internal object a version before this one let a caller write is not used on trust."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import requests

from function.namespaces import RULE
from function.storage import LocalStore
from tests.audio_checks import decode
from tests.conftest import FunctionServer, ServerFactory
from tests.jobs_fleet import Receiver, document, wait_for_job
from tests.test_events import OUTPUT, Bucket, acknowledged, event_env, eventarc_pubsub
from tests.test_http_errors import error_of

BUCKET = "tts-namespaces"
RATE = 24_000
HEX = "0123456789abcdef" * 3


@pytest.fixture(scope="module")
def bucket(gcs: str) -> Bucket:
    return Bucket(gcs, BUCKET)


@pytest.fixture(scope="module")
def event_server(start_server: ServerFactory, gcs: str, bucket: Bucket) -> FunctionServer:
    """The event target, its output in this module's bucket (tests.test_events has its own)."""
    env = event_env(gcs, output=f"gs://{bucket.name}/{OUTPUT}")
    return start_server(target="synthesize_event", **env)


@pytest.mark.parametrize(
    "output",
    [
        "jobs/pause-24000-200ms",  # the silence every job puts between its parts
        f"jobs/{HEX[:32]}/audio",  # a future job's audio (its id is a content hash)
        "JOBS/x",  # the same folder on a case-insensitive file system
        HEX[:40],  # a content address: the cache entry of some text
        f"{HEX[:40].upper()}-stream",
        f"{HEX[:41]}.wav",
    ],
)
def test_outputs_in_the_service_namespaces_are_refused_and_write_nothing(
    event_server: FunctionServer, bucket: Bucket, output: str
) -> None:
    delivery = eventarc_pubsub({"text": "Squatting a name.", "format": "pcm", "output": output})
    acknowledged(delivery.to(event_server))
    record = bucket.manifest(f"jobs/{delivery.event_id}.json")
    assert record["status"] == "failed", record
    assert (record["error"]["field"], record["error"]["code"]) == ("output", "reserved_output")
    assert RULE in record["error"]["message"]
    assert not bucket.blobs(f"{OUTPUT}/{output}"), "nothing is written at the reserved name"


def test_a_dropped_file_under_jobs_is_refused_too(event_server: FunctionServer, bucket: Bucket) -> None:
    name = f"inputs/jobs/{uuid.uuid4().hex}.txt"  # its audio would be named jobs/<hex>.wav
    bucket.upload(name, b"A dropped file that would land among the jobs.")
    delivery = bucket.finalized(name)
    acknowledged(delivery.to(event_server))
    record = bucket.manifest(f"jobs/{delivery.event_id}.json")
    assert record["status"] == "failed" and record["error"]["code"] == "reserved_output"
    assert not bucket.blobs(f"{OUTPUT}/{name.removeprefix('inputs/').removesuffix('.txt')}")


@pytest.mark.parametrize("output", [f"notes/{HEX[:40]}", "jobsite/a", f"{HEX[:39]}"])
def test_names_outside_the_namespaces_still_work(
    event_server: FunctionServer, bucket: Bucket, output: str
) -> None:
    output = f"{output}-{uuid.uuid4().hex[:6]}"
    delivery = eventarc_pubsub({"text": "A name of the caller's own.", "output": output})
    acknowledged(delivery.to(event_server))
    assert bucket.manifest(f"{output}.wav.json")["status"] == "succeeded"


@pytest.mark.parametrize("path", ["/synthesize", "/jobs"])
def test_http_routes_name_no_objects(server: FunctionServer, path: str) -> None:
    response = requests.post(f"{server.url}{path}", json={"text": "Hi.", "output": "jobs/x"}, timeout=30)
    assert error_of(response, 400)["field"] == "output"


def test_a_content_address_cannot_be_squatted(start_server: ServerFactory, tmp_path: Path) -> None:
    """Defect 2: another text's audio stored under the address of a known text made every
    ``POST /synthesize`` of that text a 409."""
    text = f"The text whose address is known {uuid.uuid4().hex[:6]}."
    elsewhere = start_server(TTS_OUTPUT_URI=str(tmp_path / "elsewhere"), TTS_ENGINES="hibari")
    address = requests.post(f"{elsewhere.url}/synthesize", json={"text": text}, timeout=60).json()["object"]
    out = tmp_path / "shared"
    events = start_server(target="synthesize_event", TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari")
    squat = eventarc_pubsub({"text": "Something else entirely.", "output": address.removesuffix(".wav")})
    acknowledged(squat.to(events))
    record = json.loads((out / "jobs" / f"{squat.event_id}.json").read_text())
    assert record["error"]["code"] == "reserved_output"
    http = start_server(TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari")
    response = requests.post(f"{http.url}/synthesize", json={"text": text}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["object"] == address


def test_a_poisoned_pause_is_not_spoken_between_parts(
    start_server: ServerFactory, tmp_path: Path, receiver: Receiver
) -> None:
    """Defect 1: speech at the name of the silence between parts (which a caller's ``output`` could
    write before this version) was spoken between every later job's parts."""
    env = {"TTS_ENGINES": "hibari", "TTS_JOB_PART_CHARS": "300", "TTS_OUTPUT_URI": str(tmp_path)}
    events = start_server("synthesize_event", **env, TTS_JOBS_RESULTS_URL=receiver.url)
    attempt = eventarc_pubsub(
        {"text": "Speech where silence belongs.", "format": "pcm", "output": "jobs/pause-24000-200ms"}
    )
    acknowledged(attempt.to(events))
    assert json.loads((tmp_path / "jobs" / f"{attempt.event_id}.json").read_text())["status"] == "failed"
    # What a version before this one wrote there: two seconds of tone, at the shared name.
    tone = (np.sin(np.arange(2 * RATE) / 3) * 9000).astype("<i2").tobytes()
    LocalStore(tmp_path).create("jobs/pause-24000-200ms.pcm", tone, "audio/pcm", {"sample_rate": str(RATE)})

    front = start_server(**env, TTS_JOBS_PUSH_URLS=events.url)
    accepted = requests.post(f"{front.url}/jobs", json={"text": document(6, seed=24)}, timeout=60).json()
    done = wait_for_job(front.url, accepted["job_id"])
    assert done["status"] == "succeeded" and accepted["parts"] >= 3
    parts_dir = tmp_path / "jobs" / accepted["job_id"] / "parts"
    parts = [json.loads(p.read_text()) for p in sorted(parts_dir.glob("*.json"))]
    expected_s = sum(p["duration_s"] for p in parts) + 0.2 * (len(parts) - 1)
    wav = decode(Path(done["uri"].removeprefix("file://")).read_bytes())
    assert wav.duration_s == pytest.approx(expected_s, abs=0.01)
    assert done["duration_s"] == pytest.approx(expected_s, abs=0.01)
