"""Streaming against whole responses: time to the first audio byte and total time, per engine
(not a test).

    .venv/bin/python -m loadtest.bench_streaming [--engines hibari,kokoro,cosyvoice] [--trials 5]
        [--sentences 20] [--out loadtest/results/bench_streaming.json]

One functions-framework instance per engine, as in production (one worker, one thread, TTS_THREADS
engine threads), warmed up first. Each trial sends three requests, in alternating order so a shared
machine's load hits both modes alike, each for a text never asked before (no cache hits):

* whole: ``POST /synthesize?response=audio`` (PCM), the audio in one response;
* streamed: ``POST /synthesize`` with ``"stream": true`` (PCM), the audio as each piece is spoken;
* first sentence: the streamed text's first sentence alone (JSON), whose ``synthesis_ms`` is the
  yardstick of the goal: time to the first audio byte <= first sentence's synthesis + 50 ms.

Times are the client's (http.client on loopback): first byte = the first body byte. Medians over
``--trials``; each trial records the load average at its start. cosyvoice runs on the tiny random
model the tests build (its speed says nothing about CosyVoice-300M; it checks the streaming path
with that engine's pieces); its full-size random weights speak until the LLM's length limit and
would take minutes per request here.

CosyVoice speaks the English sentences: a random LLM never draws EOS, so it speaks until its
length limit, 20 speech tokens per text token. For these English sentences (12-15 text tokens) that
is 240-300 tokens (4.8-6 s of audio at 50 tokens/s), near what the real model says for ~11 words;
for the Mandarin ones (14-20 text tokens for 14 characters, and 11 more for the tag) it was
280-580 tokens where the real model says ~150: a first sentence two to four times too long to be
the yardstick. Streamed CosyVoice sends its first audio after 120 speech tokens (upstream's stream
mode: a hop of 100 and an overlap of 20), whatever the sentence.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from function.local import cpu_model, health_url, wait_healthy
from loadtest.deployments import start_instance, warm
from loadtest.processes import ProcessGroup, exit_on_sigterm
from loadtest.run import DEFAULT_OUT

GOAL_MS = 50.0
# Sentences of similar length; the trial's tag makes every text new (same length each trial).
ENGLISH = [
    "The river carried the small boat past the old stone bridge.",
    "Children waved from the bank as the morning mist lifted slowly.",
    "A heron stood still in the reeds and watched the water move.",
    "Further down, the valley opened into wide green fields of barley.",
]
MANDARIN = [
    "小船顺着河水漂过古老的石桥。",
    "孩子们在岸边向我们挥手告别。",
    "一只白鹭静静地站在芦苇丛中。",
    "山谷的尽头是一片金色的麦田。",
]
TEXTS = {"hibari": ENGLISH, "kokoro": MANDARIN, "cosyvoice": ENGLISH}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="hibari,kokoro,cosyvoice")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--sentences", type=int, default=20)
    p.add_argument("--engine-threads", type=int, default=1, help="TTS_THREADS of the engine")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT.parent / "bench_streaming.json")
    return p.parse_args(argv)


def text(engine: str, sentences: int, tag: str) -> str:
    """``sentences`` sentences, the first one carrying ``tag`` (so it is new and the same length)."""
    pool = TEXTS[engine]
    parts = [pool[i % len(pool)] for i in range(sentences)]
    english = pool is ENGLISH
    parts[0] = f"{tag} {parts[0]}" if english else f"{tag}，{parts[0]}"
    return " ".join(parts) if english else "".join(parts)


def post(url: str, path: str, body: dict[str, Any]) -> tuple[float, float, bytes]:
    """(ms to the first body byte, ms to the last, the body)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=600)
    started = time.perf_counter()
    connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    first = response.read1(65536)
    first_ms = (time.perf_counter() - started) * 1000
    rest = response.read()
    total_ms = (time.perf_counter() - started) * 1000
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"{path}: {response.status} {first + rest!r}")
    return first_ms, total_ms, first + rest


def trial(url: str, engine: str, sentences: int, index: int) -> dict[str, float]:
    tags = {mode: f"T{index:03d}{mode[0]}" for mode in ("whole", "streamed")}
    runs: dict[str, float] = {"load_average_1m": _load()[0]}
    modes = ["whole", "streamed"] if index % 2 == 0 else ["streamed", "whole"]
    for mode in modes:
        words = text(engine, sentences, tags[mode])
        if mode == "whole":
            first, total, _ = post(url, "/synthesize?response=audio", {"text": words, "format": "pcm"})
        else:
            first, total, _ = post(url, "/synthesize", {"text": words, "format": "pcm", "stream": True})
        runs[f"{mode}_first_byte_ms"], runs[f"{mode}_total_ms"] = first, total
    opening = text(engine, 1, tags["streamed"])
    _, _, body = post(url, "/synthesize", {"text": opening, "format": "pcm"})
    runs["first_sentence_synthesis_ms"] = json.loads(body)["synthesis_ms"]
    return runs


def engine_env(engine: str, model_root: Path, out: Path, threads: int) -> dict[str, str]:
    env = {"TTS_ENGINES": engine, "TTS_OUTPUT_URI": str(out), "TTS_THREADS": str(threads)}
    if engine == "cosyvoice":
        from loadtest.upstream_cosyvoice.random_model import build_tiny_model

        env["TTS_MODEL_DIR"] = str(build_tiny_model(model_root / "cosyvoice-tiny"))
        # The request-timeout guard budgets CosyVoice-300M's 1.2 s/char; the tiny model is far faster.
        env["TTS_SECONDS_PER_CHAR"] = "0.01"
    return env


def bench(engine: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with ProcessGroup(workdir / "logs") as group:
        env = engine_env(engine, workdir, workdir / f"out-{engine}", args.engine_threads)
        url, process, log = start_instance(group, engine, env)
        wait_healthy(health_url(url), process, 120, log)
        warm(url)
        runs = [trial(url, engine, args.sentences, i) for i in range(args.trials)]
    medians: dict[str, Any] = {name: round(statistics.median(r[name] for r in runs), 1) for name in runs[0]}
    medians["goal_met"] = (
        medians["streamed_first_byte_ms"] <= medians["first_sentence_synthesis_ms"] + GOAL_MS
    )
    return {"engine": engine, "median": medians, "runs": runs}


def _load() -> list[float]:
    """1-, 5- and 15-minute load averages: other jobs on the machine skew every figure."""
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    exit_on_sigterm()
    machine = {"processor": cpu_model(), "cpu_count": os.cpu_count(), "load_average_start": _load()}
    report = {"machine": machine, "sentences": args.sentences, "trials": args.trials, "engines": []}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-streaming-") as tmp:
        for engine in args.engines.split(","):
            report["engines"].append(bench(engine, args, Path(tmp)))
            machine["load_average_end"] = _load()
            args.out.write_text(json.dumps(report, indent=2))  # each engine's figures as they come
    results = report["engines"]
    print(
        f"{machine['processor']}, {machine['cpu_count']} CPUs, load average {machine['load_average_start']}"
    )
    print("engine     | whole: first byte / total ms | streamed: first byte / total ms | 1st sentence | goal")
    for result in results:
        m = result["median"]
        print(
            f"{result['engine']:10} | {m['whole_first_byte_ms']:>9} / {m['whole_total_ms']:>9} | "
            f"{m['streamed_first_byte_ms']:>9} / {m['streamed_total_ms']:>9} | "
            f"{m['first_sentence_synthesis_ms']:>9} | {'met' if m['goal_met'] else 'missed'}"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
