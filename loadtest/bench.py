"""Single-instance figures: cold start, serving overhead, cache hits, memory, and throughput against
the number of instances.

The yardstick of the overheads is the bare engine (``loadtest.bare``): a fresh process that imports
the engine, loads it, speaks the same sentence and writes the WAV file (cold), and the same call
plus the WAV file in a warm process. Runs alternate between the function and the bare engine, so a
busy machine slows both alike. The function's own timings (its JSON response) break each figure
down: model load, synthesis, encoding, the durable write, and the rest (imports, framework start,
validation, routing, hashing, logging, HTTP).

    python -m loadtest.bench                 # a few minutes
    python -m loadtest.bench --smoke         # seconds: checks the tool, not the numbers
    TTS_ENGINES=cosyvoice TTS_MODEL_DIR=... python -m loadtest.bench

Prints a table and writes bench.json into --out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from function.local import REPO
from loadtest import bare
from loadtest.deployments import engine_env, start_fleet, start_instance
from loadtest.processes import ProcessGroup, exit_on_sigterm
from loadtest.run import DEFAULT_OUT, machine, run_locust
from loadtest.stats import summarize
from loadtest.texts import sentence

MiB = 1024 * 1024
# The function's own timings (its JSON response), in the order a request spends them.
STAGES = ("lookup_ms", "load_ms", "synthesis_ms", "encode_ms", "upload_ms")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny counts and seconds: only checks the tool")
    p.add_argument("--cold-runs", type=int, default=5, help="fresh processes for the cold start median")
    p.add_argument("--repeats", type=int, default=30, help="requests per warm / cache-hit median")
    p.add_argument(
        "--instances", default="1,2,3,4", help='fleet sizes for the throughput sweep ("": no sweep)'
    )
    p.add_argument("--duration", type=int, default=20, help="seconds per throughput step")
    p.add_argument("--cpus", default=None, help="cores for the servers, e.g. 0,1 (default: all allowed)")
    p.add_argument("--engine-threads", type=int, default=1, help="TTS_THREADS of every engine")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if args.smoke:
        args.cold_runs, args.repeats, args.instances, args.duration = 2, 5, "1,2", 3
    return args


def post(url: str, body: dict, audio: bool = False, timeout_s: float = 300) -> tuple[bytes, dict[str, str]]:
    headers = {"Content-Type": "application/json", **({"Accept": "audio/wav"} if audio else {})}
    request = urllib.request.Request(f"{url}/synthesize", data=json.dumps(body).encode(), headers=headers)
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return response.read(), dict(response.headers)


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def cold_start(
    group: ProcessGroup, output_dir: Path, name: str, text: str, threads: int, timeout_s: float = 300
) -> tuple[float, dict]:
    """Process start → first synthesized response (and the response), retrying the synthesis
    until the server listens."""
    started = time.perf_counter()
    url, process, _ = start_instance(group, name, engine_env(output_dir, threads))
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited; see {group.log_dir / name}.log")
        try:
            data, _ = post(url, {"text": text})
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.002)  # a refused connection costs little; poll finely so the figure is precise
            continue
        total_ms = (time.perf_counter() - started) * 1000
        body = json.loads(data)
        if body["cached"] or not body["cold_start"]:
            raise RuntimeError(f"{name}: first response is not a freshly synthesized cold start")
        return total_ms, body
    raise TimeoutError(f"{name}: no audio after {timeout_s} s")


def bare_cold_start(text: str, wav: Path) -> float:
    """A fresh process: import the engine, load it, speak ``text``, write the WAV file (with this
    process's TTS_THREADS)."""
    env = dict(os.environ)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "loadtest.bare", text, str(wav)], cwd=REPO, env=env, check=True)
    return (time.perf_counter() - started) * 1000


def breakdown(total_ms: list[float], bodies: list[dict]) -> dict[str, float]:
    """Median of each stage the function timed, and of what is left: the rest of the total."""
    stages = {s: median([b.get(s, 0.0) for b in bodies]) for s in STAGES if any(s in b for b in bodies)}
    rest = [t - sum(b.get(s, 0.0) for s in STAGES) for t, b in zip(total_ms, bodies, strict=True)]
    return {**stages, "rest_ms": median(rest)}


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    # The bare engine (in this process and in its fresh ones) builds with the same thread count.
    os.environ["TTS_THREADS"] = str(args.engine_threads)
    threads = args.engine_threads
    args.out.mkdir(parents=True, exist_ok=True)
    cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else None
    rng = random.Random(0)
    results: dict[str, object] = {"machine": machine(cpus), "smoke": args.smoke, "engine_threads": threads}

    with tempfile.TemporaryDirectory(prefix="tts-bench-") as tmp:
        scratch = Path(tmp)
        colds: list[float] = []
        cold_bodies: list[dict] = []
        bare_colds: list[float] = []
        for i in range(args.cold_runs):
            text = f"Cold start number {time.time_ns()}."
            with ProcessGroup(args.out / "logs" / "bench", cpus) as group:
                total_ms, body = cold_start(group, scratch / f"cold-{i}", f"cold-{i}", text, threads)
            colds.append(total_ms)
            cold_bodies.append(body)
            bare_colds.append(bare_cold_start(text, scratch / f"bare-cold-{i}.wav"))
        results["cold_start_ms"] = median(colds)
        results["cold_start_runs_ms"] = [round(c, 1) for c in colds]
        results["bare_cold_start_ms"] = median(bare_colds)
        results["bare_cold_start_runs_ms"] = [round(c, 1) for c in bare_colds]
        results["cold_start_ratio"] = round(results["cold_start_ms"] / results["bare_cold_start_ms"], 2)
        results["cold_start_breakdown_ms"] = breakdown(colds, cold_bodies)

        with ProcessGroup(args.out / "logs" / "bench", cpus) as group:
            url, _, _ = start_instance(group, "warm", engine_env(scratch / "warm", threads))
            speak = bare.speaker(bare.build())
            texts = [sentence(10, rng) for _ in range(args.repeats + 1)]
            _wait_and_load(url)  # the model load stays out of the warm medians
            http_ms: list[float] = []
            bodies: list[dict] = []
            bare_ms: list[float] = []
            for i, text in enumerate(texts[1:]):
                started = time.perf_counter()
                bodies.append(json.loads(post(url, {"text": text})[0]))
                http_ms.append((time.perf_counter() - started) * 1000)
                bare_ms.append(timed(lambda t=text, i=i: speak(t, scratch / f"bare-{i}.wav")))
            hit_ms = [timed(lambda: post(url, {"text": texts[1]})) for _ in range(args.repeats)]
            results["warm_http_ms"] = median(http_ms)
            # Each warm request's text length and time: the service-time distribution that the
            # capacity model (loadtest.capacity) samples.
            results["warm_http_samples"] = [
                {"chars": len(text), "ms": round(ms, 1)} for text, ms in zip(texts[1:], http_ms, strict=True)
            ]
            results["warm_engine_ms"] = median(bare_ms)
            results["serving_overhead_ms"] = round(results["warm_http_ms"] - results["warm_engine_ms"], 1)
            results["serving_overhead_ratio"] = round(results["warm_http_ms"] / results["warm_engine_ms"], 2)
            results["warm_breakdown_ms"] = breakdown(http_ms, bodies)
            results["cache_hit_ms"] = median(hit_ms)
            results["peak_rss_mib_per_instance"] = round(sum(group.peak_rss_bytes()) / MiB, 1)

        sweep = []
        for n in [int(i) for i in args.instances.split(",") if i]:
            with start_fleet(n, scratch / f"fleet-{n}", args.out / "logs", cpus, 2, 10, threads) as fleet:
                sweep_args = argparse.Namespace(
                    max_requests=100_000, think=0.0, duration=args.duration, user_classes="UniqueSentences"
                )
                log = run_locust(fleet.url, 2 * n, sweep_args, args.out, f"bench-instances-{n}")
                (step,) = summarize(f"fleet-{n}", 2 * n, log, None)
            sweep.append(
                {
                    "instances": n,
                    "users": 2 * n,
                    "qps": step.qps,
                    "p50_ms": step.p50_ms,
                    "p95_ms": step.p95_ms,
                    "error_rate": step.error_rate,
                }
            )
        results["throughput_by_instances"] = sweep

    (args.out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"# wrote {args.out / 'bench.json'}")
    return 0


def _wait_and_load(url: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            post(url, {"text": f"Load the model {time.time_ns()}."})
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def print_table(r: dict) -> None:
    rows = [
        ("cold start (process start -> first audio), median", f"{r['cold_start_ms']:.0f} ms"),
        ("bare engine process (import, load, speak, write WAV)", f"{r['bare_cold_start_ms']:.0f} ms"),
        ("cold start vs bare engine process", f"{r['cold_start_ratio']:.2f}x"),
        ("cold start, by stage (medians)", _stages(r["cold_start_breakdown_ms"])),
        ("warm 10-word sentence over HTTP, median", f"{r['warm_http_ms']:.1f} ms"),
        ("same text, bare engine call + WAV file, median", f"{r['warm_engine_ms']:.1f} ms"),
        ("serving overhead", f"{r['serving_overhead_ms']:.1f} ms ({r['serving_overhead_ratio']:.2f}x)"),
        ("warm request, by stage (medians)", _stages(r["warm_breakdown_ms"])),
        ("cache hit over HTTP, median", f"{r['cache_hit_ms']:.1f} ms"),
        ("peak RSS per instance", f"{r['peak_rss_mib_per_instance']:.0f} MiB"),
    ]
    rows += [
        (
            f"throughput, {s['instances']} instance(s), {s['users']} users",
            f"{s['qps']:.1f} req/s "
            f"(p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, errors {100 * s['error_rate']:.1f}%)",
        )
        for s in r["throughput_by_instances"]
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _stages(stages: dict[str, float]) -> str:
    return ", ".join(f"{name.removesuffix('_ms')} {ms:.1f}" for name, ms in stages.items()) + " ms"


if __name__ == "__main__":
    raise SystemExit(main())
