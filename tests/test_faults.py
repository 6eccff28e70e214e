"""Faults on purpose: storage unreachable, stalled, stopped and restarted; the process killed in
the middle of a write; a full disk (a file-size limit on the worker: mounting a tiny tmpfs needs
root). Each asserts how soon the answer comes and what is left in storage."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from function.local import free_port
from function.storage import GCS_CONNECT_TIMEOUT_S, GCS_READ_TIMEOUT_S, GCS_RETRY_S
from tests.audio_checks import assert_speech, decode
from tests.conftest import FunctionServer, ServerFactory, drain_log, fake_gcs, gcs_client
from tests.test_http_errors import error_of

# One call's worst case (the retry budget, then one more attempt), with slack for a loaded machine.
STORAGE_DEADLINE_S = GCS_RETRY_S + GCS_CONNECT_TIMEOUT_S + GCS_READ_TIMEOUT_S + 5
BODY = {"text": "Storage is having a bad day."}


def timed_post(server: FunctionServer, body: dict, timeout: float = 120) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.post(f"{server.url}/synthesize", json=body, timeout=timeout)
    return response, time.monotonic() - started


def health_is_prompt(server: FunctionServer) -> None:
    started = time.monotonic()
    assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert time.monotonic() - started < 2


def test_unreachable_storage_is_a_503_within_seconds(start_server: ServerFactory, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: connections are refused
    server = start_server(TTS_OUTPUT_URI="gs://gone/audio", STORAGE_EMULATOR_HOST=closed)
    response, elapsed = timed_post(server, BODY)
    assert error_of(response, 503)["code"] == "storage_unavailable"
    print(f"\nunreachable storage: 503 after {elapsed:.1f} s")
    assert elapsed < STORAGE_DEADLINE_S
    health_is_prompt(server)


@pytest.fixture
def stalling_storage() -> Iterator[str]:
    """A storage endpoint that accepts connections and never answers (a hung proxy)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_stalled_storage_is_a_503_within_the_deadline(
    start_server: ServerFactory, stalling_storage: str
) -> None:
    server = start_server(TTS_OUTPUT_URI="gs://stalled/audio", STORAGE_EMULATOR_HOST=stalling_storage)
    response, elapsed = timed_post(server, BODY)
    assert error_of(response, 503)["code"] == "storage_unavailable"
    print(f"\nstalled storage: 503 after {elapsed:.1f} s")
    assert GCS_READ_TIMEOUT_S <= elapsed < STORAGE_DEADLINE_S
    health_is_prompt(server)


def test_storage_stopped_and_restarted_recovers_without_a_restart(start_server: ServerFactory) -> None:
    with fake_gcs() as emulator:
        gcs_client(emulator.url).create_bucket("flaky")
        server = start_server(TTS_OUTPUT_URI="gs://flaky/audio", STORAGE_EMULATOR_HOST=emulator.url)
        assert timed_post(server, {"text": "Before the outage."})[0].status_code == 200
        emulator.stop()
        response, elapsed = timed_post(server, BODY)
        assert error_of(response, 503)["code"] == "storage_unavailable"
        print(f"\nstopped storage: 503 after {elapsed:.1f} s")
        assert elapsed < STORAGE_DEADLINE_S
        emulator.start()  # on the same port, in a new folder, so it comes back empty
        drain_log(emulator)
        client = gcs_client(emulator.url)
        client.create_bucket("flaky")
        recovered = requests.post(f"{server.url}/synthesize?response=audio", json=BODY, timeout=120)
        assert recovered.status_code == 200, recovered.text  # the same instance, storage back
        assert_speech(decode(recovered.content), 24_000)
        assert len(list(client.list_blobs("flaky"))) == 1


def worker_pid(server: FunctionServer) -> int:
    """gunicorn's one worker (the process that serves), a child of functions-framework's process."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
    return int(children[0]) if children else server.process.pid


def visible_objects(out: Path) -> list[Path]:
    """The objects a reader sees: not the metadata folder, not temporary files."""
    return [
        p
        for p in out.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts)
    ]


def test_kill_9_mid_synthesis_leaves_nothing_half_written(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    server = start_server(TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari")
    text = " ".join(f"Sentence {n} keeps the worker busy while it is killed." for n in range(150))
    call = threading.Thread(target=lambda: _ignore_errors(server, text), daemon=True)
    call.start()
    time.sleep(1.5)  # loading and synthesizing
    os.kill(worker_pid(server), signal.SIGKILL)
    call.join(timeout=30)
    for path in visible_objects(out):
        meta = out / ".meta" / f"{path.relative_to(out)}.json"
        assert meta.exists(), f"{path} without metadata"
        assert_speech(decode(path.read_bytes()), 24_000)


def _ignore_errors(server: FunctionServer, text: str) -> None:
    with contextlib.suppress(requests.RequestException):
        requests.post(f"{server.url}/synthesize", json={"text": text}, timeout=60)


def test_full_disk_is_a_503_and_leaves_no_object(start_server: ServerFactory, tmp_path: Path) -> None:
    out = tmp_path / "out"
    server = start_server(TTS_OUTPUT_URI=str(out), TTS_ENGINES="hibari")
    assert timed_post(server, {"text": "Small enough to fit."})[0].status_code == 200
    # Files the worker writes may not grow past 256 KiB (EFBIG, as ENOSPC would stop it).
    limit = 256 * 1024
    resource.prlimit(worker_pid(server), resource.RLIMIT_FSIZE, (limit, limit))
    long_text = " ".join(f"Sentence {n} needs more room than the disk has left." for n in range(12))
    response, _ = timed_post(server, {"text": long_text})
    assert error_of(response, 503)["code"] == "storage_unavailable"
    assert all(p.stat().st_size < limit for p in out.rglob("*") if p.is_file())
    assert len(visible_objects(out)) == 1  # the first, complete object only
    assert not [p for p in out.rglob("*.tmp")]  # the temporary file was removed
    meta = json.loads(next((out / ".meta").iterdir()).read_text())
    assert meta["content_type"] == "audio/wav"
