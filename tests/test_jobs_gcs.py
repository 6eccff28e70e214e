"""Jobs on Google Cloud Storage: compose (in a tree past 32 sources) and create-if-absent through
the real google-cloud-storage client against fake-gcs-server, and a whole job whose document is an
object in the input bucket, its audio composed in the bucket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from function.storage import GcsStore
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory, gcs_client
from tests.jobs_fleet import document, wait_for_job, wait_until
from tests.test_events import Bucket

BUCKET = "tts-jobs"
INPUTS = "tts-jobs-inputs"
DROPS = "tts-jobs-drops"  # input and output in one bucket, as test_events' Bucket has it


@pytest.fixture(scope="module")
def buckets(gcs: str) -> Iterator[str]:
    client = gcs_client(gcs)
    for name in (BUCKET, INPUTS):
        client.create_bucket(name)
    yield BUCKET


def test_compose_joins_many_sources_once_in_a_tree(gcs: str, buckets: str) -> None:
    client = gcs_client(gcs)
    objects = GcsStore(BUCKET, "compose", client=client)
    composes: list[str] = []
    client._http.hooks["response"].append(
        lambda response, **_: composes.append(response.url) if "/compose?" in response.url else None
    )
    names = [f"src/{n:03d}" for n in range(70)]  # three levels: 70 -> 3 -> 1
    for n, name in enumerate(names):
        objects.create(name, bytes([n]) * 3, "application/octet-stream", {})
    stored, created = objects.compose("joined", names, "audio/pcm", {"job_id": "j1"}, "scratch/")
    assert created and stored.size == 210 and stored.metadata == {"job_id": "j1"}
    assert objects.read("joined") == b"".join(bytes([n]) * 3 for n in range(70))
    # Write-once: a second composer (another finisher) gets the first one's object.
    again, created = objects.compose("joined", names[:2], "audio/pcm", {"job_id": "j2"})
    assert not created and again.metadata == {"job_id": "j1"} and again.size == 210
    # Every compose asked for create-if-absent. fake-gcs-server (the version here) does not enforce
    # ifGenerationMatch on compose, so the second composer above is turned away by the look-up in
    # front; on GCS the precondition also closes the race between look-up and compose.
    assert len(composes) == 4 and all("ifGenerationMatch=0" in url for url in composes)
    assert objects.names("scratch/") == ["scratch/0-0", "scratch/0-1", "scratch/0-2"]
    assert objects.names("src/")[:2] == ["src/000", "src/001"] and len(objects.names("src/")) == 70


@pytest.fixture(scope="module")
def gcs_fleet(start_server: ServerFactory, gcs: str, buckets: str) -> FunctionServer:
    env = {
        "TTS_OUTPUT_URI": f"gs://{BUCKET}/audio",
        "TTS_INPUT_BUCKET": INPUTS,
        "STORAGE_EMULATOR_HOST": gcs,
        "TTS_ENGINES": "hibari",
        "TTS_JOB_PART_CHARS": "100",
    }
    events = start_server("synthesize_event", **env)
    return start_server(**env, TTS_JOBS_PUSH_URLS=events.url)


def test_a_job_from_the_input_bucket_is_composed_into_one_wav(gcs: str, gcs_fleet: FunctionServer) -> None:
    client = gcs_client(gcs)
    client.bucket(INPUTS).blob("inputs/chapter.txt").upload_from_string(document(40, sentences=1).encode())
    response = requests.post(
        f"{gcs_fleet.url}/jobs", json={"input": f"gs://{INPUTS}/inputs/chapter.txt"}, timeout=60
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert 2 * accepted["parts"] - 1 > 32  # parts and pauses: more than one compose call takes
    done = wait_for_job(gcs_fleet.url, accepted["job_id"])
    assert (
        done["status"] == "succeeded"
        and done["uri"] == f"gs://{BUCKET}/audio/jobs/{accepted['job_id']}/audio.wav"
    )
    blob = client.bucket(BUCKET).get_blob(done["uri"].removeprefix(f"gs://{BUCKET}/"))
    assert blob.content_type == "audio/wav" and blob.metadata["job_id"] == accepted["job_id"]
    wav = decode(blob.download_as_bytes())
    assert_speech(wav, 24_000, min_s=30, max_s=300)
    assert wav.duration_s == pytest.approx(done["duration_s"], abs=0.001)
    scratch = f"audio/jobs/{accepted['job_id']}/compose/"
    assert [b.name for b in client.list_blobs(BUCKET, prefix=scratch)] == [f"{scratch}0-0", f"{scratch}0-1"]

    outside = requests.post(f"{gcs_fleet.url}/jobs", json={"input": f"gs://{BUCKET}/audio/x.txt"}, timeout=10)
    assert outside.status_code == 400 and INPUTS in outside.json()["error"]["message"]


def test_a_dropped_file_too_long_for_one_event_becomes_a_job_named_after_it(
    start_server: ServerFactory, gcs: str, gcs_fleet: FunctionServer
) -> None:
    drops = Bucket(gcs, DROPS)
    env = {
        "TTS_OUTPUT_URI": f"gs://{DROPS}/audio",
        "STORAGE_EMULATOR_HOST": gcs,
        "TTS_ENGINES": "hibari",
        "TTS_MAX_EVENT_CHARS": "300",
        "TTS_JOB_PART_CHARS": "200",
    }
    parts_runner = start_server("synthesize_event", **env)
    events = start_server("synthesize_event", **env, TTS_JOBS_PUSH_URLS=parts_runner.url)
    drops.upload("inputs/book/long.txt", document(8, seed=5).encode())
    delivery = drops.finalized("inputs/book/long.txt")
    assert delivery.to(events).status_code == 200
    assert wait_until(lambda: bool(drops.blobs("audio/book/long.wav.json")), 60)
    manifest = drops.manifest("book/long.wav.json")
    assert manifest["status"] == "succeeded" and manifest["parts"] >= 2
    wav = drops.audio("book/long.wav")
    assert_speech(wav, 24_000, min_s=10, max_s=120)
    assert wav.duration_s == pytest.approx(manifest["duration_s"], abs=0.001)
