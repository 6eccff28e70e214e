"""Lexicons kept in the input bucket, named by their gs:// URI: read through the real
google-cloud-storage client from fake-gcs-server by a real HTTP instance (hibari). A word is read
as the bucket's lexicon says, an edited lexicon is new audio at once (its content hash is in the
key: nothing stale), and what may not be read is refused; unreachable storage is a 503. An SSML
file dropped in the bucket becomes audio too."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from function.local import free_port
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory, gcs_client
from tests.jobs_fleet import Receiver, wait_for_job, wait_until
from tests.test_events import Bucket, acknowledged
from tests.test_http_api import log_lines

OUTPUTS = "tts-lexicon-audio"
INPUTS = "tts-lexicon-inputs"
LEXICON = f"gs://{INPUTS}/lexicons/web.pls"
SENTENCE = "Our site is on the WWW today."


def pls(alias: str) -> bytes:
    return (
        '<lexicon version="1.0" xmlns="http://www.w3.org/2005/01/pronunciation-lexicon" alphabet="ipa">'
        f"<lexeme><grapheme>WWW</grapheme><alias>{alias}</alias></lexeme></lexicon>"
    ).encode()


@pytest.fixture(scope="module")
def inputs(gcs: str) -> Bucket:
    gcs_client(gcs).create_bucket(OUTPUTS)
    return Bucket(gcs, INPUTS)


@pytest.fixture(scope="module")
def server(start_server: ServerFactory, gcs: str, inputs: Bucket) -> FunctionServer:
    return start_server(
        TTS_ENGINES="hibari",
        TTS_OUTPUT_URI=f"gs://{OUTPUTS}/audio",
        TTS_INPUT_BUCKET=INPUTS,
        STORAGE_EMULATOR_HOST=gcs,
    )


def speak(server: FunctionServer, text: str, **body: object) -> requests.Response:
    return requests.post(f"{server.url}/synthesize?response=audio", json={"text": text, **body}, timeout=120)


def samples(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return decode(response.content).samples


def test_a_bucket_lexicon_changes_the_reading_and_an_edit_is_never_stale(
    server: FunctionServer, inputs: Bucket
) -> None:
    inputs.upload("lexicons/web.pls", pls("World Wide Web"), "application/pls+xml")
    plain = speak(server, SENTENCE)
    read = speak(server, SENTENCE, lexicons=[LEXICON])
    assert_speech(decode(read.content), 24_000)
    # Read as the alias: the same samples as the sentence with the alias written out.
    assert np.array_equal(samples(read), samples(speak(server, SENTENCE.replace("WWW", "World Wide Web"))))
    assert not np.array_equal(samples(plain), samples(read))

    inputs.upload("lexicons/web.pls", pls("the web"), "application/pls+xml")
    edited = speak(server, SENTENCE, lexicons=[LEXICON])
    # A new key (the lexicon's hash), synthesized now: not the audio stored for the old lexicon.
    assert edited.headers["X-Audio-Cached"] == "false"
    assert edited.headers["X-Audio-Uri"] != read.headers["X-Audio-Uri"]
    assert np.array_equal(samples(edited), samples(speak(server, SENTENCE.replace("WWW", "the web"))))


def test_lexicons_outside_the_input_buckets_prefix_or_missing_are_refused(
    server: FunctionServer, inputs: Bucket
) -> None:
    inputs.upload("inputs/not-a-lexicon.pls", pls("x"), "application/pls+xml")
    for uri in (f"gs://{OUTPUTS}/lexicons/web.pls", f"gs://{INPUTS}/inputs/not-a-lexicon.pls"):
        refused = speak(server, SENTENCE, lexicons=[uri])
        error = refused.json()["error"]
        assert refused.status_code == 400 and error["field"] == "lexicons" and INPUTS in error["message"]
    missing = speak(server, SENTENCE, lexicons=[f"gs://{INPUTS}/lexicons/gone.pls"])
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "unknown_lexicon"
    inputs.upload("lexicons/broken.pls", b"<lexicon><lexeme>", "application/pls+xml")
    broken = speak(server, SENTENCE, lexicons=[f"gs://{INPUTS}/lexicons/broken.pls"])
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "invalid_lexicon"
    inputs.upload("lexicons/huge.pls", b" " * (1024 * 1024 + 1), "application/pls+xml")
    huge = speak(server, SENTENCE, lexicons=[f"gs://{INPUTS}/lexicons/huge.pls"])
    assert huge.status_code == 400 and "limit" in huge.json()["error"]["message"]


def test_unreachable_storage_for_a_lexicon_is_a_503(start_server: ServerFactory, tmp_path: object) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: a real refused connection
    server = start_server(
        TTS_ENGINES="hibari",
        TTS_OUTPUT_URI=str(tmp_path),
        TTS_INPUT_BUCKET=INPUTS,
        STORAGE_EMULATOR_HOST=closed,
    )
    started = time.monotonic()
    response = speak(server, SENTENCE, lexicons=[LEXICON])
    assert response.status_code == 503 and response.json()["error"]["code"] == "storage_unavailable"
    assert time.monotonic() - started < 30


def test_a_dropped_ssml_file_becomes_audio(start_server: ServerFactory, gcs: str) -> None:
    drops = Bucket(gcs, "tts-ssml-drops")
    events = start_server(
        "synthesize_event",
        TTS_ENGINES="hibari",
        TTS_OUTPUT_URI=f"gs://{drops.name}/audio",
        STORAGE_EMULATOR_HOST=gcs,
    )
    drops.upload("inputs/notes/intro.ssml", b'<speak>Dropped <break time="800ms"/> markup.</speak>')
    acknowledged(drops.finalized("inputs/notes/intro.ssml").to(events))
    manifest = drops.manifest("notes/intro.wav.json")
    assert manifest["status"] == "succeeded" and manifest["chars"] == len("Dropped\nmarkup.")
    assert_speech(drops.audio("notes/intro.wav"), 24_000)


def job_env(gcs: str, prefix: str) -> dict[str, str]:
    """A job deployment reading lexicons from the input bucket, its parts at most 100 characters."""
    return {
        "TTS_ENGINES": "hibari",
        "TTS_OUTPUT_URI": f"gs://{OUTPUTS}/{prefix}",
        "TTS_INPUT_BUCKET": INPUTS,
        "STORAGE_EMULATOR_HOST": gcs,
        "TTS_JOB_PART_CHARS": "100",
    }


def test_a_jobs_bucket_lexicon_is_read_by_every_part(
    start_server: ServerFactory, gcs: str, inputs: Bucket
) -> None:
    env = job_env(gcs, "jobs-audio")
    parts = start_server("synthesize_event", **env)
    front = start_server(**env, TTS_JOBS_PUSH_URLS=parts.url)
    inputs.upload("lexicons/job.pls", pls("World Wide Web"), "application/pls+xml")
    text = f"The first part has nothing a lexicon would change at all, not one word.\n{SENTENCE} {SENTENCE}"
    alias = text.replace("WWW", "World Wide Web")
    cases = {
        "plain": (text, None),
        "read": (text, [f"gs://{INPUTS}/lexicons/job.pls"]),
        "alias": (alias, None),
    }
    done = {}
    for name, (document, lexicons) in cases.items():
        body = {"text": document, "lexicons": lexicons, "format": "pcm"}
        accepted = requests.post(f"{front.url}/jobs", json=body, timeout=60)
        assert accepted.status_code == 202, accepted.text
        done[name] = wait_for_job(front.url, accepted.json()["job_id"])
        assert done[name]["status"] == "succeeded", done[name]
    # The parts ran on another instance, read the lexicon there and made the audio the job planned:
    # the alias spoken, to the sample.
    blobs = {name: inputs.client.bucket(OUTPUTS).blob(d["uri"].split("/", 3)[3]) for name, d in done.items()}
    audio = {name: blob.download_as_bytes() for name, blob in blobs.items()}
    assert audio["read"] == audio["alias"] != audio["plain"]


def test_a_lexicon_edited_while_its_job_runs_fails_the_job_with_lexicon_changed(
    start_server: ServerFactory, gcs: str, inputs: Bucket
) -> None:
    """The parts are captured as the push loop sends them, the lexicon is edited in the bucket, then
    the parts are delivered: the first fails the job (409 ``lexicon_changed``: its audio would not
    be the audio the job planned), acknowledged, and nothing else is written: no audio, and the
    later parts and a redelivery of the first do nothing."""
    capture = Receiver()
    env = job_env(gcs, "edited-during-job")
    parts = start_server("synthesize_event", **env)
    front = start_server(**env, TTS_JOBS_PUSH_URLS=capture.url)
    inputs.upload("lexicons/edited.pls", pls("World Wide Web"), "application/pls+xml")
    text = " ".join(f"Page {n} of our site is on the WWW today, and it says so." for n in range(4))
    body = {"text": text, "lexicons": [f"gs://{INPUTS}/lexicons/edited.pls"], "format": "pcm"}
    accepted = requests.post(f"{front.url}/jobs", json=body, timeout=60)
    assert accepted.status_code == 202, accepted.text
    job_id, count = accepted.json()["job_id"], accepted.json()["parts"]
    assert count >= 2 and wait_until(lambda: len(capture.bodies) == count)
    bodies = [{k: v for k, v in b.items() if k != "path"} for b in capture.bodies]
    capture.stop()
    outputs = inputs.client.bucket(OUTPUTS)

    def written() -> set[str]:
        return {blob.name for blob in inputs.client.list_blobs(OUTPUTS, prefix="edited-during-job/")}

    before = written()

    inputs.upload("lexicons/edited.pls", pls("the web"), "application/pls+xml")
    deliver = f"{parts.url}/projects/local/topics/tts-job-parts"
    acknowledged(requests.post(deliver, json=bodies[0], timeout=60))  # not a retry: it cannot succeed
    done = wait_for_job(front.url, job_id, timeout_s=10)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "lexicon_changed" and done["error"]["part"] == 0
    assert done["error"]["field"] == "lexicons" and "submit the document again" in done["error"]["message"]
    line = next(e for e in log_lines(parts) if e.get("job_id") == job_id)
    assert (line["outcome"], line["error"]) == ("failed", "lexicon_changed")
    for later in [*bodies[1:], bodies[0]]:
        acknowledged(requests.post(deliver, json=later, timeout=60))
    prefix = f"edited-during-job/jobs/{job_id}/"
    part_manifest = json.loads(outputs.blob(f"{prefix}parts/000000.json").download_as_bytes())
    assert part_manifest["status"] == "failed" and part_manifest["error"]["code"] == "lexicon_changed"
    # Only the failed part's manifest and the job's failed manifest: no audio, no other part.
    assert written() - before == {
        f"{prefix}parts/000000.json",
        f"{prefix}manifest.json",
    }


def test_a_warm_instance_reads_a_bucket_lexicon_once_per_generation(
    gcs: str, inputs: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process, through the real client (its reads counted): a lexicon is downloaded and parsed
    once per generation of its object, and each use after that is a metadata look-up that finds it
    unchanged; an edit is a new generation, read at once, with a new content hash (new audio keys)."""
    from function import lexicons
    from function.config import Settings
    from function.jobs.request import input_store

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs)
    input_store.cache_clear()  # a client made for this emulator
    store, reads = input_store(INPUTS), []
    read = store.read
    monkeypatch.setattr(store, "read", lambda name: reads.append(name) or read(name))
    uri, settings = f"gs://{INPUTS}/lexicons/cached.pls", Settings(input_bucket=INPUTS)
    try:
        inputs.upload("lexicons/cached.pls", pls("World Wide Web"), "application/pls+xml")
        first = lexicons.from_bucket(uri, settings)
        assert lexicons.from_bucket(uri, settings) is first and len(reads) == 1
        assert first.entries["WWW"].alias == "World Wide Web"
        # The same size, so only the generation tells the edit.
        inputs.upload("lexicons/cached.pls", pls("Wide World Web"), "application/pls+xml")
        edited = lexicons.from_bucket(uri, settings)
        assert edited.entries["WWW"].alias == "Wide World Web" and edited.sha256 != first.sha256
        assert lexicons.from_bucket(uri, settings) is edited and len(reads) == 2
    finally:
        input_store.cache_clear()


def test_a_local_objects_generation_changes_when_its_bytes_are_replaced(tmp_path: Path) -> None:
    from function.storage import LocalStore

    store = LocalStore(tmp_path)
    stored, _ = store.create("lexicons/a.pls", pls("one"), "application/pls+xml", {})
    assert stored.generation and store.stat("lexicons/a.pls") == stored
    replacement = tmp_path / "replacement"
    replacement.write_bytes(pls("two"))  # the same size, written by hand over the object
    replacement.replace(tmp_path / "lexicons" / "a.pls")
    assert store.stat("lexicons/a.pls").generation != stored.generation
