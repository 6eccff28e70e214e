"""Realistic traffic for the TTS service, against any base URL (local fleet or a deployed service).

    locust -f loadtest/locustfile.py --host https://tts-xyz.a.run.app --headless -u 8 -t 60s

Environment:
  TTS_LOADTEST_TOKEN         sent as ``Authorization: Bearer …`` (IAM-protected Cloud Run:
                             ``TTS_LOADTEST_TOKEN=$(gcloud auth print-identity-token)``)
  TTS_LOADTEST_THINK_S       upper bound of each user's pause between requests (default 0.5)
  TTS_LOADTEST_MAX_REQUESTS  send at most this many requests, then stop the run (default: no cap)
  TTS_LOADTEST_LOG           append one JSON line per request (time, name, status, ms) to this file,
                             so latency can be computed from successful requests only
  TTS_LOADTEST_SCENARIO      "mixed" (default: cache misses, hits, mixed lengths, the OpenAI route)
                             or "isolation" (some users send long passages, the others short prompts)
  TTS_LOADTEST_LONG_USERS    isolation: how many users send long passages (default 1)
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

# Locust loads this file by path; make the ``loadtest`` package importable from any directory.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from loadtest.traffic import KINDS

THINK_S = float(os.environ.get("TTS_LOADTEST_THINK_S", "0.5"))
MAX_REQUESTS = int(os.environ.get("TTS_LOADTEST_MAX_REQUESTS", "0"))
# Which users run: "mixed" (realistic traffic) or "isolation" (short and long texts, apart).
SCENARIO = os.environ.get("TTS_LOADTEST_SCENARIO", "mixed")
LONG_USERS = int(os.environ.get("TTS_LOADTEST_LONG_USERS", "1"))
# A refused request (the platform's queue is full) is retried after this pause, as a polite client would.
BACKOFF_S = 1.0


class TtsUser(FastHttpUser):
    abstract = True
    wait_time = between(0, THINK_S)
    network_timeout = 120.0
    connection_timeout = 10.0

    def on_start(self) -> None:
        self.rng = random.Random()
        token = os.environ.get("TTS_LOADTEST_TOKEN")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def post(self, path: str, body: dict[str, Any], name: str) -> None:
        global _sent
        # Counted before sending (gevent does not switch between the check and the increment): the
        # quit the cap's last answer spawns comes too late for requests other users already sent.
        if MAX_REQUESTS and _sent >= MAX_REQUESTS:
            raise StopUser()
        _sent += 1
        with self.client.post(path, json=body, headers=self.headers, name=name, catch_response=True) as r:
            if r.status_code == 200 and r.content:
                r.success()
                return
            r.failure(f"HTTP {r.status_code}")
        if r.status_code in (429, 503):
            gevent.sleep(BACKOFF_S)

    def send(self, kind: str) -> None:
        request = KINDS[kind]
        self.post(request.path, request.make(self.rng), request.name)


class UniqueSentences(TtsUser):
    """Every request a cache miss: a new ten-word sentence."""

    weight = 4
    abstract = SCENARIO != "mixed"

    @task
    def synthesize(self) -> None:
        self.send("unique-10w")


class HotSet(TtsUser):
    """Repeated sentences: after the first synthesis, answered from storage."""

    weight = 2
    abstract = SCENARIO != "mixed"

    @task
    def synthesize(self) -> None:
        self.send("hot-set")


class MixedLengths(TtsUser):
    """Short prompts, paragraphs and the odd long passage."""

    weight = 2
    abstract = SCENARIO != "mixed"

    @task(3)
    def short(self) -> None:
        self.send("mixed-3w")

    @task(2)
    def medium(self) -> None:
        self.send("mixed-25w")

    @task(1)
    def long(self) -> None:
        self.send("mixed-80w")


class OpenAISpeech(TtsUser):
    """The OpenAI-compatible route, audio bytes in the response (as the OpenAI SDK expects)."""

    weight = 1
    abstract = SCENARIO != "mixed"

    @task
    def speech(self) -> None:
        self.send("openai-speech")


class ShortTexts(TtsUser):
    """Isolation: a fresh five-word prompt each time; its latency is what a long request may hurt."""

    abstract = SCENARIO != "isolation"

    @task
    def synthesize(self) -> None:
        self.send("short-5w")


class LongTexts(TtsUser):
    """Isolation: a fresh 150-word passage each time, from a fixed number of users."""

    fixed_count = LONG_USERS
    abstract = SCENARIO != "isolation"

    @task
    def synthesize(self) -> None:
        self.send("long-150w")


_log_file = open(os.environ["TTS_LOADTEST_LOG"], "a") if os.environ.get("TTS_LOADTEST_LOG") else None  # noqa: SIM115
_count = 0
_sent = 0
_environment: Any = None


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    global _environment
    _environment = environment


@events.request.add_listener
def _on_request(
    request_type: str, name: str, response_time: float, response: Any, exception: Any, **_: Any
) -> None:
    global _count
    _count += 1
    if _log_file is not None:
        status = getattr(response, "status_code", 0) or 0
        record = {
            "t": time.time(),
            "name": name,
            "status": status,
            "ok": exception is None,
            "ms": response_time,
        }
        _log_file.write(json.dumps(record) + "\n")
    if MAX_REQUESTS and _count == MAX_REQUESTS and _environment is not None and _environment.runner:
        gevent.spawn(_environment.runner.quit)


@events.quitting.add_listener
def _on_quit(**_: Any) -> None:
    if _log_file is not None:
        _log_file.flush()
