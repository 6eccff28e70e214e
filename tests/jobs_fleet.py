"""Helpers for the job tests: a receiver that stands where Pub/Sub's push endpoints would (it
records every POST and acknowledges it), documents, and polling a job to its end."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

# English paragraphs (hibari), different enough that their parts have different audio.
WORDS = [
    "river",
    "mountain",
    "lantern",
    "harbor",
    "meadow",
    "violet",
    "thunder",
    "copper",
    "garden",
    "silver",
]


def document(paragraphs: int, sentences: int = 3, seed: int = 0) -> str:
    """``paragraphs`` paragraphs of ``sentences`` short sentences each, separated by blank lines."""
    out = []
    for p in range(paragraphs):
        sentence = [
            f"The {WORDS[(seed + p + s) % len(WORDS)]} number {p * sentences + s + seed} is quiet tonight."
            for s in range(sentences)
        ]
        out.append(" ".join(sentence))
    return "\n\n".join(out)


class Receiver:
    """A loopback HTTP server that records every POSTed JSON body and answers 200."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append({"path": self.path, **json.loads(self.rfile.read(length))})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def messages(self) -> list[dict[str, Any]]:
        """The Pub/Sub messages received, with their data decoded."""
        return [
            {**body["message"], "data": json.loads(base64.b64decode(body["message"]["data"]))}
            for body in self.bodies
            if "message" in body
        ]

    def stop(self) -> None:
        self.server.shutdown()


def wait_for_job(base_url: str, job_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """Poll ``GET /jobs/<id>`` until the job has succeeded or failed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = requests.get(f"{base_url}/jobs/{job_id}", timeout=10).json()
        if status["status"] in ("succeeded", "failed"):
            return status
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} still {status} after {timeout_s} s")


def wait_until(condition: Callable[[], bool], timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
