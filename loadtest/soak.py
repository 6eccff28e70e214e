"""Soak one instance: N sequential requests, the worker's RSS every 50 and the latency percentiles.

    .venv/bin/python -m loadtest.soak [--requests 1000] [--every 50] [--languages en,zh]

Each request is a fresh sentence (no cache hits), in the languages given in turn, so memory that
grew with synthesis would show. Prints the RSS series (MiB) and p50/p95 latency; the machine is named.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
import urllib.request

import psutil

from function.local import ONE_AT_A_TIME, REPO, cpu_model, free_port, health_url, serve_command, wait_healthy

SENTENCES = {
    "en": "Request number {n} checks that the instance keeps its memory flat over time.",
    "zh": "这是第{n}个请求，用来检查实例的内存是否保持平稳。",
}


def post(url: str, text: str) -> float:
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--languages", default="en,zh", help="sentences in these languages, in turn")
    args = parser.parse_args()
    languages = args.languages.split(",")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="tts-soak-") as out:
        env = {**os.environ, **ONE_AT_A_TIME, "TTS_OUTPUT_URI": out, "TTS_THREADS": "1"}
        process = subprocess.Popen(
            serve_command("synthesize", port),
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(health_url(url), process)
            worker = psutil.Process(process.pid).children()[0]
            latencies, rss = [], []
            for n in range(1, args.requests + 1):
                template = SENTENCES[languages[n % len(languages)]]
                latencies.append(post(f"{url}/synthesize", template.format(n=n)))
                if n % args.every == 0:
                    rss.append(round(worker.memory_info().rss / 2**20, 1))
        finally:
            process.terminate()
            process.wait(timeout=10)
    cuts = statistics.quantiles(latencies, n=20)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} vCPU; load average {os.getloadavg()}")
    print(f"{args.requests} requests (languages in turn: {args.languages}; all cache misses)")
    print(f"worker RSS MiB every {args.every}: {rss}")
    print(f"latency ms: p50 {statistics.median(latencies):.1f}, p95 {cuts[18]:.1f}, max {max(latencies):.1f}")


if __name__ == "__main__":
    main()
