"""The production image, built from the Dockerfile unchanged (tests/image/build.sh), tested through
its running container as Cloud Run starts it (loadtest/containers.py): what the other tests show of
the source tree, shown here of what is deployed. Speech is checked by ear (Whisper, loadtest/asr.py),
the bucket is fake-gcs-server through the real google-cloud-storage client in the container.

The base under the image is a stand-in (Debian's Python 3.11 on debootstrap, tests/image/base.sh):
no registry of container images is reachable here. Everything above the FROM line is the real one.
"""

from __future__ import annotations

import json
import threading
import time
import uuid

import openai
import pytest
import requests

from loadtest import asr
from loadtest.containers import Container, podman
from tests.audio_checks import assert_speech, decode
from tests.conftest import gcs_client
from tests.image.conftest import ContainerFactory
from tests.test_events import PUBSUB, Bucket, acknowledged, raw_push
from tests.test_intelligibility import ENGLISH, MANDARIN, MAX_ENGLISH_WER, MAX_MANDARIN_CER

RATE = 24_000
RUNTIME_UID = "10001"
# The default image's budget (issue 25), uncompressed as podman's store counts it (10^6 bytes), on
# the stand-in base (128 MB, about python:3.11-slim's size).
MAX_IMAGE_MB = 500
# Long enough that SIGTERM lands mid-stream: several sentences, each one piece of the stream.
LONG = " ".join(ENGLISH)


@pytest.fixture(scope="module")
def http(start_container: ContainerFactory) -> Container:
    """The HTTP target with the image's own settings: audio under /tmp, the one writable place."""
    return start_container()


def speak(container: Container, text: str) -> tuple[object, dict]:
    response = requests.post(
        f"{container.url}/synthesize?response=audio", json={"text": text, "format": "wav"}, timeout=120
    )
    assert response.status_code == 200, response.text
    audio = decode(response.content)
    assert_speech(audio, RATE)
    return audio, dict(response.headers)


def test_the_image_is_built_in_docker_format(image: str) -> None:
    """In OCI format podman drops SHELL (the build stages' pipefail, which makes a failed hash check
    in a pipe fail the build) and HEALTHCHECK; the docker format keeps both."""
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    assert inspected["ManifestType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert inspected["Healthcheck"] == {"Test": ["NONE"]}
    assert inspected["Config"]["User"] == f"{RUNTIME_UID}:{RUNTIME_UID}"


def test_the_default_image_is_within_its_size_budget_with_one_kokoro_model(image: str) -> None:
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    assert inspected["Size"] / 1e6 <= MAX_IMAGE_MB, f"{inspected['Size'] / 1e6:.1f} MB"
    # The 7-bit static model, on every CPU: no timed model, no export, no PyPI parts beside it.
    listing = podman("run", "--rm", "--entrypoint", "ls", image, "/opt/models/kokoro-82m").stdout.split()
    assert sorted(listing) == ["jieba.trie", "manifest.json", "model.static.onnx", "voices"]


def test_the_container_runs_as_cloud_run_starts_it(http: Container) -> None:
    assert http.exec("id", "-u").stdout.strip() == RUNTIME_UID
    # The code and the models cannot be changed by the process serving requests (they belong to
    # root), nor by root (the root file system is read-only)...
    for path in ("/app/function/main.py", "/opt/models/kokoro-82m/manifest.json", "/opt/venv/pyvenv.cfg"):
        done = http.exec("sh", "-c", f"echo x >> {path}")
        assert done.returncode != 0 and "Permission denied" in done.stderr, (path, done)
        done = http.exec("sh", "-c", f"echo x >> {path}", user="0")
        assert done.returncode != 0 and "Read-only file system" in done.stderr, (path, done)
    # ...and /tmp is the one place it writes (where the image's TTS_OUTPUT_URI points).
    assert http.exec("sh", "-c", "echo x > /tmp/probe && cat /tmp/probe").stdout == "x\n"
    # PID 1 is the server itself, so Cloud Run's SIGTERM reaches it with no shell in between.
    assert "functions-framework" in http.exec("cat", "/proc/1/cmdline").stdout


def test_healthz_answers_during_a_cold_start_without_loading_a_model(image: str) -> None:
    container = Container(image)
    try:
        first = container.wait_healthy()
        ready_s = time.monotonic() - container.started  # `podman run` to the probe's first answer
        assert first.status_code == 200
        assert first.json() == {
            "status": "ok",
            "engines": [{"name": "hibari", "loaded": False}, {"name": "kokoro", "loaded": False}],
            "model_loaded": False,
        }
        # Measured ~1.5 s on 2 shared vCPUs; well under Cloud Run's startup probe budget.
        print(f"container start -> /healthz {ready_s:.2f} s")
        assert ready_s < 10
    finally:
        container.remove()


def error_rate(http: Container, texts: tuple[str, ...], language: str) -> float:
    """WER (English) or CER (Mandarin) of what the recogniser heard through the container."""
    score, joiner = (asr.wer, " ") if language == "en" else (asr.cer, "")
    heard = []
    for text in texts:
        audio, _ = speak(http, text)
        heard.append(asr.transcribe(audio.samples, audio.sample_rate, language))
        print(f"{score(text, heard[-1]):.3f}  heard: {heard[-1]!r}")
    return score(joiner.join(texts), joiner.join(heard))


def test_english_through_the_container_is_intelligible(http: Container) -> None:
    assert error_rate(http, ENGLISH[:2], "en") <= MAX_ENGLISH_WER


def test_mandarin_through_the_container_is_intelligible(http: Container) -> None:
    assert error_rate(http, MANDARIN[:3], "zh") <= MAX_MANDARIN_CER


def test_the_openai_sdk_speaks_and_streams_through_the_container(http: Container) -> None:
    client = openai.OpenAI(base_url=f"{http.url}/v1", api_key="not-checked", max_retries=0)
    whole = client.audio.speech.create(model="tts-1", voice="alloy", input=MANDARIN[0], response_format="mp3")
    assert whole.response.headers["content-type"] == "audio/mpeg"
    assert_speech(decode(whole.content, "mp3"), RATE)
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=" ".join(ENGLISH[:2]), response_format="pcm"
    ) as response:
        chunks = list(response.iter_bytes())
    assert len(chunks) > 1  # sent as it was spoken, not as one body
    assert_speech(decode(b"".join(chunks), "pcm", pcm_rate=RATE), RATE, min_s=4)


@pytest.fixture(scope="module")
def bucket(gcs: str) -> Bucket:
    return Bucket(gcs, f"tts-image-{uuid.uuid4().hex[:8]}")


def test_audio_lands_in_the_bucket_through_google_cloud_storage(
    start_container: ContainerFactory, gcs: str, bucket: Bucket
) -> None:
    container = start_container(TTS_OUTPUT_URI=f"gs://{bucket.name}/http", STORAGE_EMULATOR_HOST=gcs)
    response = requests.post(f"{container.url}/synthesize", json={"text": ENGLISH[3]}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["uri"].startswith(f"gs://{bucket.name}/http/") and body["cached"] is False
    stored = decode(bucket.read(body["uri"].removeprefix(f"gs://{bucket.name}/")))
    assert_speech(stored, RATE)
    assert abs(stored.duration_s - body["duration_s"]) < 0.05


def test_a_pubsub_push_to_the_event_target_makes_audio_and_its_manifest(
    start_container: ContainerFactory, gcs: str, bucket: Bucket
) -> None:
    container = start_container(
        "synthesize_event", TTS_OUTPUT_URI=f"gs://{bucket.name}/audio", STORAGE_EMULATOR_HOST=gcs
    )
    name = f"push/{uuid.uuid4().hex}"
    delivery = raw_push({"text": MANDARIN[4], "output": name, "format": "ogg"})
    acknowledged(delivery.to(container))
    assert_speech(bucket.audio(f"{name}.ogg", "ogg"), RATE)
    record = bucket.manifest(f"{name}.ogg.json")
    assert record["source"]["id"] == delivery.event_id and record["source"]["type"] == PUBSUB


def test_sigterm_mid_stream_finishes_or_fails_cleanly(image: str, gcs: str, bucket: Bucket) -> None:
    """Cloud Run sends SIGTERM to an instance it stops, with a request possibly in flight: that
    request either completes (and its audio is stored whole) or fails, with nothing stored."""
    prefix = f"sigterm-{uuid.uuid4().hex[:8]}"
    container = Container(image, TTS_OUTPUT_URI=f"gs://{bucket.name}/{prefix}", STORAGE_EMULATOR_HOST=gcs)
    exit_code: list[int] = []
    stopped_at: list[float] = []

    def stop() -> None:
        exit_code.append(container.terminate(grace_s=30))
        stopped_at.append(time.monotonic())

    try:
        container.wait_healthy()
        speak(container, "Load the model first.")  # the stream below then starts at once
        body = {"text": LONG, "format": "pcm", "stream": True}  # the stored file is the bytes sent
        with requests.post(f"{container.url}/synthesize", json=body, stream=True, timeout=120) as response:
            assert response.status_code == 200, response.text
            pieces = response.iter_content(chunk_size=None)
            received = next(pieces)  # in flight: the first sentence is out, the others are not
            stopper = threading.Thread(target=stop)
            stopper.start()
            try:
                received += b"".join(pieces)
                finished = True
            except requests.exceptions.ChunkedEncodingError:
                finished = False
            ended_at = time.monotonic()
            stopper.join(timeout=90)
        logs = container.logs()
    finally:
        container.remove()
    stored = {b.name: b.download_as_bytes() for b in gcs_client(gcs).list_blobs(bucket.name, prefix=prefix)}
    streamed_name = response.headers["X-Audio-Uri"].removeprefix(f"gs://{bucket.name}/")
    print(f"finished={finished} exit={exit_code} stored={sorted(stored)}")
    if finished:
        assert stored[streamed_name] == received  # the whole file, the very bytes the client got
        assert stopped_at[0] >= ended_at  # the shutdown waited for the request
        assert_speech(decode(received, "pcm", pcm_rate=RATE), RATE, min_s=8)
    else:
        assert streamed_name not in stored  # nothing half-written
    assert exit_code == [0], logs[-3000:]  # a clean shutdown within the grace period, not a SIGKILL
