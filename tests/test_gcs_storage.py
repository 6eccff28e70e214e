"""Audio on Google Cloud Storage through the real client, against fake-gcs-server."""

from __future__ import annotations

import requests

from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory, gcs_client, post_at_once


def test_audio_lands_in_the_bucket_with_metadata(
    gcs_server: FunctionServer, gcs: str, gcs_bucket: str
) -> None:
    body = requests.post(
        f"{gcs_server.url}/synthesize", json={"text": "Stored in a bucket."}, timeout=60
    ).json()
    assert body["uri"].startswith(f"gs://{gcs_bucket}/audio/") and body["uri"].endswith(".wav")
    # Anonymous emulator credentials cannot sign: the URL is null rather than a broken link.
    assert body["url"] is None
    blob = gcs_client(gcs).bucket(gcs_bucket).get_blob(body["uri"].removeprefix(f"gs://{gcs_bucket}/"))
    assert blob.content_type == "audio/wav"
    assert blob.metadata["voice"] == "heart" and blob.metadata["engine"] == "hibari"
    assert float(blob.metadata["duration_s"]) == body["duration_s"]
    assert_speech(decode(blob.download_as_bytes()), 24_000)

    again = requests.post(
        f"{gcs_server.url}/synthesize", json={"text": "Stored in a bucket."}, timeout=60
    ).json()
    assert again["cached"] is True and again["uri"] == body["uri"]


def test_racing_instances_write_one_generation(
    start_server: ServerFactory, gcs: str, gcs_bucket: str
) -> None:
    prefix = "race"
    instances = [
        start_server(TTS_OUTPUT_URI=f"gs://{gcs_bucket}/{prefix}", STORAGE_EMULATOR_HOST=gcs)
        for _ in range(2)
    ]
    responses = post_at_once(
        [f"{s.url}/synthesize" for s in instances], json={"text": "Only one of us writes."}
    )
    results = [r.json() for r in responses]
    assert len({r["uri"] for r in results}) == 1
    blobs = list(gcs_client(gcs).list_blobs(gcs_bucket, prefix=f"{prefix}/"))
    assert len(blobs) == 1
    assert blobs[0].generation is not None and blobs[0].metageneration == 1
    assert_speech(decode(blobs[0].download_as_bytes()), 24_000)
