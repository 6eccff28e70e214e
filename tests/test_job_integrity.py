"""Issue 24, defects 3 and 4, through real event instances and ``GET /jobs``: a job whose named
output is taken records its own failure and says so in its notification; parts its record did not
plan (forged: anyone who may publish to the topics can set the part attribute) are acknowledged,
logged and ignored, and change nothing."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import requests

from function.jobs.publish import LOCAL_TOPIC
from tests import log_contract as contract
from tests.audio_checks import decode
from tests.conftest import FunctionServer, ServerFactory
from tests.jobs_fleet import Receiver, document, wait_for_job, wait_until
from tests.test_events import acknowledged, raw_push
from tests.test_http_api import log_lines
from tests.test_jobs import notifications

FLEET_ENV = {"TTS_ENGINES": "hibari", "TTS_JOB_PART_CHARS": "300"}


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("integrity-out")


@pytest.fixture(scope="module")
def worker(start_server: ServerFactory, out: Path, receiver: Receiver) -> FunctionServer:
    """The event instance parts are pushed to; it notifies the receiver."""
    return start_server(
        "synthesize_event", **FLEET_ENV, TTS_OUTPUT_URI=str(out), TTS_JOBS_RESULTS_URL=receiver.url
    )


@pytest.fixture(scope="module")
def front(start_server: ServerFactory, out: Path, worker: FunctionServer) -> FunctionServer:
    return start_server(**FLEET_ENV, TTS_OUTPUT_URI=str(out), TTS_JOBS_PUSH_URLS=worker.url)


def test_a_job_whose_output_is_taken_fails_under_its_own_name(
    start_server: ServerFactory, out: Path, worker: FunctionServer, front: FunctionServer, receiver: Receiver
) -> None:
    """Defect 3: the second job's notification said "succeeded" with the first job's audio, and
    ``GET /jobs/<second>`` said running, every part done, forever."""
    events = start_server(
        "synthesize_event",
        **FLEET_ENV,
        TTS_OUTPUT_URI=str(out),
        TTS_MAX_EVENT_CHARS="400",
        TTS_JOBS_PUSH_URLS=worker.url,
    )
    name = f"book/{uuid.uuid4().hex[:8]}"
    job_ids = []
    for seed in (31, 32):  # a re-sent, edited chapter: the same output, another text
        delivery = raw_push({"text": document(6, seed=seed), "output": name})
        acknowledged(delivery.to(events))
        line = next(e for e in log_lines(events) if e.get("event_id") == delivery.event_id)
        assert line["outcome"] == "submitted"
        job_ids.append(line["job_id"])
        assert wait_for_job(front.url, line["job_id"], timeout_s=60)["status"] in ("succeeded", "failed")
    first, second = job_ids
    beside = json.loads((out / f"{name}.wav.json").read_text())
    assert (beside["job_id"], beside["status"]) == (first, "succeeded")

    done = wait_for_job(front.url, second, timeout_s=5)
    assert done["status"] == "failed" and done["error"]["code"] == "output_exists"
    own = out / "jobs" / second / "manifest.json"
    assert done["manifest"] == own.as_uri() and json.loads(own.read_text())["job_id"] == second
    assert notifications(receiver, second) == [
        {"job_id": second, "status": "failed", "uri": None, "manifest": own.as_uri()}
    ]
    assert decode((out / f"{name}.wav").read_bytes()).duration_s == pytest.approx(
        beside["duration_s"], abs=0.01
    )


def push(server: FunctionServer, body: dict) -> requests.Response:
    return requests.post(f"{server.url}/{LOCAL_TOPIC}", json=body, timeout=60)


def forged(body: dict, **changes: object) -> dict:
    """A captured part's push body with its data changed (the attribute kept, as a forger would)."""
    message = dict(body["message"])
    data = json.loads(base64.b64decode(message["data"]))
    for key, value in changes.items():
        if key == "text":
            data["request"] = {**data["request"], "text": value}
        else:
            data[key] = value
    message["data"] = base64.b64encode(json.dumps(data).encode()).decode()
    message["messageId"] = str(uuid.uuid4().int)[:16]
    return {**body, "message": message}


def test_parts_the_job_did_not_plan_are_acknowledged_and_ignored(
    start_server: ServerFactory, out: Path, worker: FunctionServer
) -> None:
    """Defect 4: forged parts 50 and 51 of a 3-part job counted as done (assembly started early),
    and a forged part 1 with other text took the genuine part's place."""
    capture = Receiver()
    front = start_server(**FLEET_ENV, TTS_OUTPUT_URI=str(out), TTS_JOBS_PUSH_URLS=capture.url)
    accepted = requests.post(f"{front.url}/jobs", json={"text": document(5, seed=44)}, timeout=60).json()
    assert wait_until(lambda: len(capture.bodies) == accepted["parts"])
    capture.stop()
    bodies = [{k: v for k, v in b.items() if k != "path"} for b in capture.bodies]
    assert len(bodies) >= 3
    job_id = accepted["job_id"]

    forgeries = [
        forged(bodies[0], part=50),
        forged(bodies[0], part=len(bodies), parts=len(bodies) + 1),
        forged(bodies[1], text="Someone else's words, in the place of part one."),
        forged(
            bodies[2], request={"text": "Another voice.", "voice": "heart", "speed": 1.5, "format": "pcm"}
        ),
        forged(bodies[0], job_id="0" * 32),  # no such job
        forged(bodies[0], job_id="../../etc"),
    ]
    for body in forgeries:
        assert push(worker, body).status_code == 200
    ids = {b["message"]["messageId"] for b in forgeries}
    lines = [e for e in log_lines(worker) if e.get("event_id") in ids]
    assert len(lines) == len(forgeries)
    assert all(e["outcome"] == "ignored" and e["severity"] == "WARNING" for e in lines), lines
    assert all(set(e) - contract.TRACE == contract.EVENT | contract.PART for e in lines), lines
    running = requests.get(f"{front.url}/jobs/{job_id}", timeout=10).json()
    assert (running["status"], running["parts_done"]) == ("running", 0)

    for body in bodies:
        assert push(worker, body).status_code == 200
    done = wait_for_job(front.url, job_id, timeout_s=30)
    assert done["status"] == "succeeded" and done["parts_done"] == len(bodies)
    parts = [json.loads(p.read_text()) for p in sorted((out / "jobs" / job_id / "parts").glob("*.json"))]
    planned = json.loads((out / "jobs" / job_id / "job.json").read_text())["part_objects"]
    assert [p["object"] for p in parts] == planned
    expected_s = sum(p["duration_s"] for p in parts) + 0.2 * (len(parts) - 1)
    assert done["duration_s"] == pytest.approx(expected_s, abs=0.01)


def test_the_requests_subscription_never_delivers_a_message_claiming_to_be_a_part() -> None:
    """Defence in depth beside the record check: Pub/Sub filters on the part attribute."""
    from function.jobs.submit import PART_ATTRIBUTE
    from tests.deploy import iac

    push = iac.resources("google_pubsub_subscription")["push"]
    assert iac.expr(push["filter"]) == "local.push_filters[each.key]"
    filters = {topic: iac.unquote(f) for topic, f in iac.locals_()["push_filters"].items()}
    assert filters == {
        "requests": f"NOT attributes:{PART_ATTRIBUTE}",
        "job_parts": f"attributes:{PART_ATTRIBUTE}",
    }
    assert set(filters) == set(iac.locals_()["push_subscriptions"])


def test_the_same_job_submitted_to_two_instances_at_once_is_published_once(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    """Defect 8: both instances found no ``published`` marker and both published every part."""
    from tests.conftest import post_at_once

    capture = Receiver()
    env = {**FLEET_ENV, "TTS_OUTPUT_URI": str(tmp_path), "TTS_JOBS_PUSH_URLS": capture.url}
    fronts = [start_server(**env) for _ in range(2)]
    try:
        for seed in range(81, 86):  # the race is won or lost by milliseconds: several trials
            before = len(capture.bodies)
            body = {"text": document(40, seed=seed)}
            responses = post_at_once([f"{f.url}/jobs" for f in fronts], json=body)
            assert [r.status_code for r in responses] == [202, 202], [r.text for r in responses]
            accepted = [r.json() for r in responses]
            assert accepted[0]["job_id"] == accepted[1]["job_id"]
            parts = accepted[0]["parts"]
            assert wait_until(lambda b=before, p=parts: len(capture.bodies) - b >= p, 20)
            wait_until(lambda: False, 1)  # a second publisher's messages would have arrived by now
            pushed = [
                json.loads(base64.b64decode(b["message"]["data"]))["part"] for b in capture.bodies[before:]
            ]
            assert sorted(pushed) == list(range(parts)), (
                f"trial {seed}: {len(pushed)} messages for {parts} parts"
            )
    finally:
        capture.stop()


def test_with_keys_a_job_is_visible_only_to_the_key_that_submitted_it(
    start_server: ServerFactory, out: Path, worker: FunctionServer
) -> None:
    """Defect 9: key B could read key A's job (status and uri), and learn that A had submitted a
    document (the same content-addressed id came back, and its parts were cache hits)."""
    from function import auth

    made = [auth.new_key() for _ in range(2)]
    file = out / f"keys-{uuid.uuid4().hex[:6]}.json"
    file.write_text(json.dumps({"keys": [{"id": i, "sha256": auth.digest(k)} for k, i in made]}))
    front = start_server(
        **FLEET_ENV, TTS_OUTPUT_URI=str(out), TTS_JOBS_PUSH_URLS=worker.url, TTS_API_KEYS_FILE=str(file)
    )
    as_a, as_b = ({"X-API-Key": key} for key, _ in made)

    def job_of(headers: dict) -> str:
        response = requests.post(
            f"{front.url}/jobs", json={"text": document(4, seed=99)}, headers=headers, timeout=60
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        assert wait_until(lambda: status(job_id, headers).json()["status"] == "succeeded", 60)
        return job_id

    def status(job_id: str, headers: dict) -> requests.Response:
        return requests.get(f"{front.url}/jobs/{job_id}", headers=headers, timeout=10)

    mine = job_of(as_a)
    theirs = status(mine, as_b)
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "job_not_found"
    unknown = status("0" * 32, as_b).json()["error"]["message"]
    assert theirs.json()["error"]["message"].replace(mine, "0" * 32) == unknown
    other = job_of(as_b)
    assert other != mine and job_of(as_a) == mine  # still one job per document for its own key
    # B's parts were synthesized for B: A's audio is not B's cache (no timing tells B of A's job).
    parts = [json.loads(p.read_text()) for p in (out / "jobs" / other / "parts").glob("*.json")]
    assert parts and not any(p["cached"] for p in parts)


def test_an_assembly_that_cannot_finish_in_its_event_fails_the_job_instead_of_looping(
    start_server: ServerFactory, tmp_path: Path, receiver: Receiver
) -> None:
    """Defect 6: encoding a long job to opus in the last part's delivery ran past the event's
    timeout; on Cloud Run it is cut off and redelivered until dead-lettered, and the job says
    "running" forever. The parts' instance here has a 2 s event (its assembly may take 1.6 s; the
    front's submit-time estimate used the default 540 s), and five minutes of opus take several
    seconds to encode on any CPU."""
    env = {**FLEET_ENV, "TTS_OUTPUT_URI": str(tmp_path)}
    worker = start_server(
        "synthesize_event", **env, TTS_EVENT_TIMEOUT_S="2", TTS_JOBS_RESULTS_URL=receiver.url
    )
    front = start_server(**env, TTS_JOBS_PUSH_URLS=worker.url, TTS_JOB_MAX_CHARS="20000")
    text = document(36, seed=66)

    def run(fmt: str) -> dict:
        response = requests.post(f"{front.url}/jobs", json={"text": text, "format": fmt}, timeout=60)
        assert response.status_code == 202, response.text
        return wait_for_job(front.url, response.json()["job_id"], timeout_s=120)

    joined = run("wav")  # composed without encoding: fits whatever its length
    assert joined["status"] == "succeeded" and joined["duration_s"] > 240
    done = run("opus")
    assert done["status"] == "failed", done
    assert (done["error"]["code"], done["error"]["field"], done["error"]["part"]) == (
        "audio_too_long",
        "format",
        None,
    )
    assert "wav or pcm" in done["error"]["message"]
    assert notifications(receiver, done["job_id"])[0]["status"] == "failed"
    assert not Path(done["uri"].removeprefix("file://")).exists()


def test_a_job_too_long_to_encode_in_one_event_is_refused_at_submit(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    """Defect 6, up front: a 2 s event leaves 0.8 s to encode the job's audio; 4300 characters are
    at least 130 s of audio, which neither mp3 nor opus encodes in that time here."""
    capture = Receiver()
    front = start_server(
        **FLEET_ENV,
        TTS_OUTPUT_URI=str(tmp_path),
        TTS_EVENT_TIMEOUT_S="2",
        TTS_JOBS_PUSH_URLS=capture.url,
        TTS_JOB_MAX_CHARS="20000",
    )
    try:
        text = document(36, seed=67)
        for fmt in ("mp3", "opus"):
            response = requests.post(f"{front.url}/jobs", json={"text": text, "format": fmt}, timeout=60)
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert (error["code"], error["field"]) == ("job_too_long_for_format", "format")
            assert "at most about" in error["message"] and "wav or pcm" in error["message"]
        assert not capture.bodies, "nothing is published for a refused job"
        for fmt in ("wav", "pcm", "flac", "ogg"):
            response = requests.post(f"{front.url}/jobs", json={"text": text, "format": fmt}, timeout=60)
            assert response.status_code == 202, response.text
    finally:
        capture.stop()
