"""Jobs end to end: ``POST /jobs`` on a real HTTP instance, parts pushed as Pub/Sub push bodies to
real event instances (the local push loop, ``TTS_JOBS_PUSH_URLS``), a local-folder store, hibari;
the audio decoded. A loopback receiver stands where the results topic's subscriber would be."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import requests

from function.jobs.assemble import wav_header
from function.jobs.split import split_parts
from function.text import normalize_text
from tests import log_contract as contract
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory
from tests.jobs_fleet import Receiver, document, wait_for_job, wait_until
from tests.test_http_api import log_lines

RATE = 24_000
PART_CHARS = 300
FLEET_ENV = {"TTS_ENGINES": "hibari", "TTS_JOB_PART_CHARS": str(PART_CHARS)}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs-out")


@pytest.fixture(scope="module")
def fleet(start_server: ServerFactory, out: Path, receiver: Receiver) -> list[FunctionServer]:
    """Two event instances (the parts' push endpoints), notifying the receiver."""
    env = {**FLEET_ENV, "TTS_OUTPUT_URI": str(out), "TTS_JOBS_RESULTS_URL": receiver.url}
    return [start_server("synthesize_event", **env) for _ in range(2)]


@pytest.fixture(scope="module")
def front(start_server: ServerFactory, out: Path, fleet: list[FunctionServer]) -> FunctionServer:
    """The HTTP instance: accepts jobs and pushes their parts to the fleet."""
    return start_server(
        **FLEET_ENV,
        TTS_OUTPUT_URI=str(out),
        TTS_JOBS_PUSH_URLS=",".join(s.url for s in fleet),
        TTS_JOB_MAX_CHARS="20000",
        TTS_JOB_MAX_BODY_BYTES="65536",
    )


def submit(front: FunctionServer, **body: object) -> dict:
    response = requests.post(f"{front.url}/jobs", json=body, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def part_manifests(out: Path, job_id: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "jobs" / job_id / "parts").glob("*.json"))]


def test_a_long_document_is_split_fanned_out_and_joined_into_one_wav(
    front: FunctionServer, fleet: list[FunctionServer], out: Path, receiver: Receiver
) -> None:
    text = document(12)
    accepted = submit(front, text=text)
    assert accepted["status"] == "accepted" and accepted["parts"] >= 4
    assert accepted["status_url"] == f"/jobs/{accepted['job_id']}"
    done = wait_for_job(front.url, accepted["job_id"])
    assert done["status"] == "succeeded" and done["parts_done"] == accepted["parts"]
    assert done["uri"] == (out / "jobs" / accepted["job_id"] / "audio.wav").as_uri()

    wav = decode(Path(done["uri"].removeprefix("file://")).read_bytes())
    parts = part_manifests(out, accepted["job_id"])
    # The parts, in order, with one sentence pause (200 ms) between each two.
    expected_s = sum(p["duration_s"] for p in parts) + 0.2 * (len(parts) - 1)
    assert wav.duration_s == pytest.approx(expected_s, abs=0.01)
    assert_speech(wav, RATE, min_s=20, max_s=200)
    # Both instances served parts: the job fanned out.
    served = [[e for e in log_lines(s) if e.get("job_id") == accepted["job_id"]] for s in fleet]
    assert all(served), "every instance of the fleet should have run a part"
    assert {p["part"] for p in parts} == set(range(accepted["parts"]))
    assert all(p["status"] == "succeeded" and p["service_s"] > 0 for p in parts)
    # The notification, as the results topic would carry it (sent just after the manifest; at
    # least once: two parts finishing at the same instant may both send it).
    expected = {
        "job_id": accepted["job_id"],
        "status": "succeeded",
        "uri": done["uri"],
        "manifest": done["manifest"],
    }
    notes = notifications(receiver, accepted["job_id"])
    assert notes == [expected] * len(notes)


def notifications(receiver: Receiver, job_id: str) -> list[dict]:
    """The job's notifications, once at least one has arrived."""

    def sent() -> list[dict]:
        return [m["data"] for m in receiver.messages() if m["data"].get("job_id") == job_id]

    assert wait_until(lambda: bool(sent()), 10), f"no notification for job {job_id}"
    return sent()


def test_part_log_lines_have_the_contracted_fields(
    front: FunctionServer, fleet: list[FunctionServer]
) -> None:
    accepted = submit(front, text=document(3, seed=70))
    wait_for_job(front.url, accepted["job_id"])
    lines = [e for s in fleet for e in log_lines(s) if e.get("job_id") == accepted["job_id"]]
    synthesized = [e for e in lines if e["outcome"] == "done" and not e["cached"]]
    assert synthesized
    for line in synthesized:
        assert set(line) - contract.TRACE - {"load_ms", "job_status"} == contract.EVENT | contract.PART_DONE
    front_line = next(e for e in log_lines(front) if e.get("job_id") == accepted["job_id"])
    assert set(front_line) - contract.TRACE == contract.HTTP | contract.JOB_SUBMITTED


@pytest.mark.parametrize("fmt", ["pcm", "flac", "mp3", "ogg", "opus"])
def test_every_format_decodes_to_the_joined_duration(front: FunctionServer, out: Path, fmt: str) -> None:
    text = document(4, seed=40)
    reference = wait_for_job(front.url, submit(front, text=text)["job_id"])
    done = wait_for_job(front.url, submit(front, text=text, format=fmt)["job_id"])
    assert done["status"] == "succeeded"
    data = Path(done["uri"].removeprefix("file://")).read_bytes()
    decoded = decode(data, fmt, pcm_rate=RATE)
    assert_speech(decoded, RATE, min_s=5, max_s=100)  # 24 kHz is an Opus rate too
    # Same parts (cached from the WAV job: one synthesis), same length; lossy codecs pad a little.
    assert decoded.duration_s == pytest.approx(reference["duration_s"], abs=0.08)
    assert done["duration_s"] == pytest.approx(reference["duration_s"], abs=0.001)


def test_a_resent_document_is_the_same_job_and_one_changed_paragraph_costs_one_part(
    front: FunctionServer, out: Path
) -> None:
    text = document(14, seed=7)
    first = submit(front, text=text)
    wait_for_job(front.url, first["job_id"])
    again = submit(front, text=text)
    assert again["job_id"] == first["job_id"]

    paragraphs = text.split("\n\n")
    paragraphs[6] = paragraphs[6].replace("quiet", "loud")
    edited = submit(front, text="\n\n".join(paragraphs))
    assert edited["job_id"] != first["job_id"]
    assert wait_for_job(front.url, edited["job_id"])["status"] == "succeeded"
    synthesized = [p for p in part_manifests(out, edited["job_id"]) if not p["cached"]]
    assert len(synthesized) == 1, f"{len(synthesized)} of {edited['parts']} parts synthesized again"


def test_bad_jobs_are_refused_with_the_field_and_limit(front: FunctionServer) -> None:
    def refused(body: object, status: int = 400) -> dict:
        response = requests.post(f"{front.url}/jobs", json=body, timeout=30)
        assert response.status_code == status, response.text
        return response.json()["error"]

    assert refused({"voice": "heart"})["field"] == "text"
    assert refused({"text": "Hi.", "input": "gs://x/y.txt"})["field"] == "text"
    too_long = refused({"text": "word " * 5000})
    assert too_long["field"] == "text" and "20000" in too_long["message"]
    big = refused({"text": "x" * 70_000}, 413)
    assert big["field"] == "body" and "65536" in big["message"]
    assert refused({"text": "Hello.", "voice": "nobody"})["field"] == "voice"
    assert refused({"text": "Hello.", "speed": 9})["field"] == "speed"
    assert refused({"text": "Hello.", "format": "aac"})["field"] == "format"
    # No input bucket for a local store: nothing is readable by URI.
    assert refused({"input": "gs://elsewhere/inputs/a.txt"})["field"] == "input"
    for job_id in ("0" * 32, "not-a-job"):
        missing = requests.get(f"{front.url}/jobs/{job_id}", timeout=10)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    assert requests.delete(f"{front.url}/jobs/{'0' * 32}", timeout=10).status_code == 405


def test_jobs_need_an_api_key_when_keys_are_configured(start_server: ServerFactory, tmp_path: Path) -> None:
    keys = json.dumps({"keys": [{"id": "0000abcd", "sha256": "0" * 64, "label": "x"}]})
    server = start_server(TTS_OUTPUT_URI=str(tmp_path), TTS_ENGINES="hibari", TTS_API_KEYS=keys)
    assert requests.post(f"{server.url}/jobs", json={"text": "Hi."}, timeout=10).status_code == 401
    assert requests.get(f"{server.url}/jobs/{'0' * 32}", timeout=10).status_code == 401


def test_jobs_without_a_publisher_are_a_503_naming_the_setting(server: FunctionServer) -> None:
    response = requests.post(f"{server.url}/jobs", json={"text": "Hello."}, timeout=10)
    assert response.status_code == 503
    assert "TTS_JOBS_PARTS_TOPIC" in response.json()["error"]["message"]


def test_redelivered_and_racing_parts_leave_one_result(
    start_server: ServerFactory, fleet: list[FunctionServer], out: Path, receiver: Receiver
) -> None:
    """Parts captured from the push loop, then delivered by hand: the last two at the same instant
    to two instances (both may assemble), then every part again (redelivery)."""
    capture = Receiver()
    front = start_server(**FLEET_ENV, TTS_OUTPUT_URI=str(out), TTS_JOBS_PUSH_URLS=capture.url)
    accepted = submit(front, text=document(5, seed=90))
    assert wait_until(lambda: len(capture.bodies) == accepted["parts"])
    bodies = [{k: v for k, v in b.items() if k != "path"} for b in capture.bodies]
    capture.stop()
    assert accepted["parts"] >= 3

    def push(server: FunctionServer, body: dict) -> requests.Response:
        return requests.post(f"{server.url}/projects/local/topics/tts-job-parts", json=body, timeout=60)

    for body in bodies[:-2]:
        assert push(fleet[0], body).status_code == 200
    # Progress, from storage: every part but the last two.
    running = requests.get(f"{front.url}/jobs/{accepted['job_id']}", timeout=10).json()
    assert running["status"] == "running"
    assert (running["parts_done"], running["parts"]) == (len(bodies) - 2, len(bodies))
    barrier = threading.Barrier(2)
    codes: list[int] = []

    def racer(server: FunctionServer, body: dict) -> None:
        barrier.wait()
        codes.append(push(server, body).status_code)

    racers = [threading.Thread(target=racer, args=(s, b)) for s, b in zip(fleet, bodies[-2:], strict=True)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join()
    assert codes == [200, 200]
    done = wait_for_job(front.url, accepted["job_id"], timeout_s=10)
    assert done["status"] == "succeeded"
    job_dir = out / "jobs" / accepted["job_id"]
    before = sorted(p.name for p in job_dir.rglob("*"))
    for body in bodies:  # every part again: acknowledged, nothing new
        assert push(fleet[1], body).status_code == 200
    assert sorted(p.name for p in job_dir.rglob("*")) == before
    assert before.count("audio.wav") == 1 and before.count("manifest.json") == 1
    assert all(n["status"] == "succeeded" for n in notifications(receiver, accepted["job_id"]))
    outcomes = [e["outcome"] for s in fleet for e in log_lines(s) if e.get("job_id") == accepted["job_id"]]
    assert outcomes.count("duplicate") >= len(bodies)


def test_a_failed_part_fails_the_job_with_a_manifest_naming_it(
    start_server: ServerFactory, tmp_path: Path, receiver: Receiver
) -> None:
    # The event instances budget 1 s a character into a 10 s timeout (8 characters fit): every
    # part, sized by the front's default budget, is refused there, a permanent error.
    slow = start_server(
        "synthesize_event",
        TTS_OUTPUT_URI=str(tmp_path),
        TTS_SECONDS_PER_CHAR="1",
        TTS_EVENT_TIMEOUT_S="10",
        TTS_JOBS_RESULTS_URL=receiver.url,
    )
    front = start_server(TTS_OUTPUT_URI=str(tmp_path), TTS_JOBS_PUSH_URLS=slow.url)
    accepted = submit(front, text=document(2, seed=3))
    done = wait_for_job(front.url, accepted["job_id"], timeout_s=30)
    assert done["status"] == "failed"
    assert done["error"]["code"] == "text_too_long_for_timeout" and done["error"]["part"] == 0
    parts = part_manifests(tmp_path, accepted["job_id"])
    assert parts[0]["status"] == "failed" and parts[0]["error"]["field"] == "text"
    assert not (tmp_path / "jobs" / accepted["job_id"] / "audio.wav").exists()
    notes = notifications(receiver, accepted["job_id"])
    assert notes == [
        {"job_id": accepted["job_id"], "status": "failed", "uri": None, "manifest": done["manifest"]}
    ]
    # The cause gone (an instance that can synthesize), re-sending the document runs it again
    # under a new id; re-sending it once more finds that job instead of starting a third.
    able = start_server("synthesize_event", TTS_OUTPUT_URI=str(tmp_path))
    again = start_server(TTS_OUTPUT_URI=str(tmp_path), TTS_JOBS_PUSH_URLS=able.url)
    retried = submit(again, text=document(2, seed=3))
    assert retried["job_id"] != accepted["job_id"]
    assert wait_for_job(again.url, retried["job_id"], timeout_s=60)["status"] == "succeeded"
    assert submit(again, text=document(2, seed=3))["job_id"] == retried["job_id"]
    assert requests.get(f"{front.url}/jobs/{accepted['job_id']}", timeout=10).json()["status"] == "failed"


def test_an_oversized_pubsub_message_becomes_a_job_named_by_its_output(
    start_server: ServerFactory, fleet: list[FunctionServer], out: Path
) -> None:
    from tests.test_events import raw_push

    events = start_server(
        "synthesize_event",
        **FLEET_ENV,
        TTS_OUTPUT_URI=str(out),
        TTS_MAX_EVENT_CHARS="400",
        TTS_JOBS_PUSH_URLS=",".join(s.url for s in fleet),
    )
    delivery = raw_push({"text": document(6, seed=21), "format": "flac", "output": "book/chapter-1"})
    assert delivery.to(events).status_code == 200
    line = next(e for e in log_lines(events) if e.get("event_id") == delivery.event_id)
    assert line["outcome"] == "submitted" and line["parts"] >= 2
    manifest_path = out / "book" / "chapter-1.flac.json"
    assert wait_until(manifest_path.exists, 60)
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "succeeded" and manifest["job_id"] == line["job_id"]
    flac = decode((out / "book" / "chapter-1.flac").read_bytes(), "flac")
    assert_speech(flac, RATE, min_s=10, max_s=100)
    assert flac.duration_s == pytest.approx(manifest["duration_s"], abs=0.01)
    # Redelivered before or after: the same job, nothing published again.
    assert delivery.to(events).status_code == 200


def test_split_parts_fit_keep_the_text_and_cut_where_the_text_says() -> None:
    text = normalize_text(document(40, sentences=4) + "\n" + "A very long line without a break. " * 40)
    parts = split_parts(text, 300)
    assert all(0 < len(p) <= 300 for p in parts)
    assert "".join(parts).replace("\n", "").replace(" ", "") == text.replace("\n", "").replace(" ", "")
    # The cut points follow the text: the same parts from the tenth paragraph on, whatever precedes.
    tail = normalize_text("\n".join(text.split("\n")[10:]))
    assert set(split_parts(tail, 300)[-5:]) == set(parts[-5:])


def test_runs_of_separator_lines_become_no_part_and_the_job_still_completes(front: FunctionServer) -> None:
    # Separators longer than half a part would have been parts of their own, refused by routing as
    # having nothing to say; at the end of a document that failed the whole job.
    separators = "\n".join(["* * * * * * * * * *"] * 40)
    text = normalize_text(f"{document(3)}\n{separators}\n{document(3)}\n{separators}")
    parts = split_parts(text, PART_CHARS)
    assert all(any(c.isalpha() for c in p) for p in parts)
    speakable = [line for line in text.split("\n") if any(c.isalpha() for c in line)]
    assert [line for p in parts for line in p.split("\n") if any(c.isalpha() for c in line)] == speakable
    accepted = submit(front, text=text)
    assert accepted["parts"] == len(parts)
    assert wait_for_job(front.url, accepted["job_id"])["status"] == "succeeded"


def test_wav_header_makes_concatenated_pcm_a_wav_file() -> None:
    samples = (np.sin(np.arange(2400) / 5) * 8000).astype("<i2").tobytes()
    wav = decode(wav_header(len(samples), RATE) + samples)
    assert wav.sample_rate == RATE and len(wav.samples) == 2400


def test_parts_at_a_rate_opus_lacks_are_resampled_while_streaming(tmp_path: Path) -> None:
    from function.audio import FORMATS
    from function.jobs.assemble import _encode
    from function.storage import LocalStore

    store = LocalStore(tmp_path)
    rate = 22_050  # CosyVoice's
    tone = (np.sin(np.arange(rate) * 2 * np.pi * 220 / rate) * 12000).astype("<i2").tobytes()
    for name in ("a.pcm", "b.pcm"):
        store.create(name, tone, "audio/pcm", {})
    data, frames = _encode(store, ["a.pcm", "b.pcm"], rate, FORMATS["opus"])
    opus = decode(data, "opus")
    assert frames == 2 * rate and opus.sample_rate == 24_000
    assert opus.duration_s == pytest.approx(2.0, abs=0.03) and opus.rms > 0.1


def test_the_pubsub_publisher_speaks_the_rest_api_in_batches() -> None:
    """Against a loopback stand-in for Pub/Sub (a fake: the Pub/Sub emulator ships with gcloud,
    which no registry here offers): the requests topics.publish expects, 1000 messages at most."""
    from function.config import Settings
    from function.jobs.publish import Message, publisher

    stand_in = Receiver()
    settings = Settings(
        jobs_parts_topic="projects/p/topics/parts",
        jobs_results_topic="projects/p/topics/results",
        pubsub_endpoint=stand_in.url,
    )
    chosen = publisher(settings)
    assert chosen is not None
    chosen.parts([Message({"n": n}, {"tts_job_part": f"j/{n}"}) for n in range(1500)])
    chosen.result(Message({"job_id": "j", "status": "succeeded"}))
    stand_in.stop()
    paths = [body["path"] for body in stand_in.bodies]
    assert paths == ["/v1/projects/p/topics/parts:publish"] * 2 + ["/v1/projects/p/topics/results:publish"]
    batches = [body["messages"] for body in stand_in.bodies]
    assert [len(b) for b in batches] == [1000, 500, 1]
    first = batches[0][0]
    assert first["attributes"] == {"tts_job_part": "j/0"}
    assert json.loads(base64.b64decode(first["data"])) == {"n": 0}
