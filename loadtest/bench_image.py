"""The production image against a venv: size per layer, and cold start -> first audio (not a test).

    .venv/bin/python loadtest/bench_image.py [--image NAME] [--repeats 3] [--out FILE.json]

Prints (and with ``--out`` writes as JSON):

* the image's size and each layer's, from podman's store (uncompressed);
* cold start, English (hibari) and Mandarin (Kokoro), each from nothing: the container as Cloud Run
  starts it (`podman run` -> ``/healthz`` answers -> the first sentence's audio received), and the
  same function from this checkout's venv (process spawn -> ``/healthz`` -> first audio), with the
  same engines, one worker, one thread. Container and venv alternate within each repeat so the
  machine's load hits both alike; medians of ``--repeats``.

Without ``--image`` the default image is built first (tests/image/build.sh; cached after once).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from function.local import ONE_AT_A_TIME, cpu_model, free_port, health_url, serve_command, wait_healthy  # noqa: E402
from loadtest.containers import Container, build, podman  # noqa: E402

SENTENCES = {
    "en": "The train to Boston leaves at seven in the morning.",
    "zh": "今天的天气很好，我们一起去公园散步吧。",
}
# The image's own settings for a 1-vCPU instance (Dockerfile ENV), given to the venv's process.
VENV_ENV = {
    **ONE_AT_A_TIME,
    "TTS_ENGINES": "hibari,kokoro",
    "TTS_KOKORO_DIR": str(REPO / "models" / "kokoro-82m"),
    "TTS_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def layers(image: str) -> list[dict]:
    history = json.loads(podman("history", "--format=json", image).stdout)
    return [
        {"size_mb": round(h["size"] / 1e6, 1), "step": h["CreatedBy"][-110:].strip()}
        for h in history
        if h["size"]
    ]


def first_audio(url: str, text: str) -> None:
    response = requests.post(
        f"{url}/synthesize?response=audio", json={"text": text, "format": "wav"}, timeout=120
    )
    response.raise_for_status()


def container_cold(image: str, text: str) -> tuple[float, float]:
    started = time.monotonic()
    container = Container(image)
    try:
        container.wait_healthy()
        ready = time.monotonic() - started
        first_audio(container.url, text)
        return ready, time.monotonic() - started
    finally:
        container.remove()


def venv_cold(text: str) -> tuple[float, float]:
    port = free_port()
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, **VENV_ENV, "TTS_OUTPUT_URI": out}
        started = time.monotonic()
        process = subprocess.Popen(
            serve_command("synthesize", port), cwd=REPO, env=env, stdout=subprocess.DEVNULL
        )
        try:
            wait_healthy(health_url(f"http://127.0.0.1:{port}"), process)
            ready = time.monotonic() - started
            first_audio(f"http://127.0.0.1:{port}", text)
            return ready, time.monotonic() - started
        finally:
            process.terminate()
            process.wait(timeout=30)


def median_of(runs: list[tuple[float, float]]) -> dict[str, float | list[float]]:
    return {
        "ready_s": round(statistics.median(r[0] for r in runs), 2),
        "first_audio_s": round(statistics.median(r[1] for r in runs), 2),
        "first_audio_runs_s": [round(r[1], 2) for r in runs],  # the spread behind the median
    }


def cold_starts(image: str, repeats: int) -> dict[str, dict[str, dict[str, float | list[float]]]]:
    results: dict[str, dict[str, dict[str, float | list[float]]]] = {}
    for language, text in SENTENCES.items():
        ways: dict[str, Callable[[], tuple[float, float]]] = {
            "container": lambda text=text: container_cold(image, text),
            "venv": lambda text=text: venv_cold(text),
        }
        runs: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
        for _ in range(repeats):
            for way, run in ways.items():
                runs[way].append(run())
        results[language] = {way: median_of(r) for way, r in runs.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", help="an image already built (default: build the default one)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    image = args.image or build()
    (inspected,) = json.loads(podman("image", "inspect", image).stdout)
    report = {
        "cpu": cpu_model(),
        "load_average": os.getloadavg(),
        "image": image,
        "size_mb": round(inspected["Size"] / 1e6, 1),
        "layers": layers(image),
        "cold_start": cold_starts(image, args.repeats),
    }
    print(f"{image}: {report['size_mb']} MB  ({report['cpu']}, load {report['load_average'][0]:.2f})")
    for layer in report["layers"]:
        print(f"  {layer['size_mb']:7.1f} MB  {layer['step']}")
    for language, ways in report["cold_start"].items():
        for way, figures in ways.items():
            ready, audio = figures["ready_s"], figures["first_audio_s"]
            runs = figures["first_audio_runs_s"]
            print(f"cold start {language} {way:9}  /healthz {ready:.2f} s  first audio {audio:.2f} s  {runs}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
