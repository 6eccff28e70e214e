"""Single-instance figures: cold start, serving overhead, cache hits, memory, and throughput against
the number of instances.

    python -m loadtest.bench                 # a few minutes
    python -m loadtest.bench --smoke         # seconds: checks the tool, not the numbers
    TTS_ENGINES=cosyvoice TTS_MODEL_DIR=... python -m loadtest.bench

Prints a table and writes bench.json into --out.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from loadtest.deployments import engine_env, start_fleet, start_instance
from loadtest.processes import ProcessGroup, exit_on_sigterm
from loadtest.run import DEFAULT_OUT, machine, run_locust
from loadtest.stats import summarize
from loadtest.texts import sentence

MiB = 1024 * 1024


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="tiny counts and seconds: only checks the tool")
    p.add_argument("--cold-runs", type=int, default=5, help="fresh processes for the cold start median")
    p.add_argument("--repeats", type=int, default=30, help="requests per warm / cache-hit median")
    p.add_argument("--instances", default="1,2,3,4", help="fleet sizes for the throughput sweep")
    p.add_argument("--duration", type=int, default=20, help="seconds per throughput step")
    p.add_argument("--cpus", default=None, help="cores for the servers, e.g. 0,1 (default: all allowed)")
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


def cold_start(group: ProcessGroup, output_dir: Path, name: str, timeout_s: float = 300) -> float:
    """Process start → first audio response, retrying the synthesis until the server listens."""
    started = time.perf_counter()
    url, process, _ = start_instance(group, name, engine_env(output_dir, 1))
    text = f"Cold start number {time.time_ns()}."
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:  # type: ignore[attr-defined]
            raise RuntimeError(f"{name} exited; see {group.log_dir / name}.log")
        try:
            data, headers = post(url, {"text": text}, audio=True)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.01)
            continue
        total_ms = (time.perf_counter() - started) * 1000
        if not data.startswith(b"RIFF") or headers.get("X-Audio-Cached") != "false":
            raise RuntimeError(f"{name}: first response is not freshly synthesized audio")
        return total_ms
    raise TimeoutError(f"{name}: no audio after {timeout_s} s")


def bare_engine() -> Callable[[str], object]:
    """The first configured engine alone, in this process, as the same TTS_* environment sets it."""
    from function.config import Settings
    from function.registry import build_engine

    settings = Settings(threads=1)
    engine = build_engine(settings.engines[0], settings)
    engine.load()
    voice = settings.default_voice or engine.default_voice
    return lambda text: engine.synthesize(text, voice, 1.0)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    exit_on_sigterm()
    args.out.mkdir(parents=True, exist_ok=True)
    cpus = [int(c) for c in args.cpus.split(",")] if args.cpus else None
    rng = random.Random(0)
    results: dict[str, object] = {"machine": machine(cpus), "smoke": args.smoke}

    with tempfile.TemporaryDirectory(prefix="tts-bench-") as tmp:
        scratch = Path(tmp)
        colds: list[float] = []
        for i in range(args.cold_runs):
            with ProcessGroup(args.out / "logs" / "bench", cpus) as group:
                colds.append(cold_start(group, scratch / f"cold-{i}", f"cold-{i}"))
        results["cold_start_ms"] = median(colds)
        results["cold_start_runs_ms"] = [round(c, 1) for c in colds]

        with ProcessGroup(args.out / "logs" / "bench", cpus) as group:
            url, _, _ = start_instance(group, "warm", engine_env(scratch / "warm", 1))
            engine_call = bare_engine()
            texts = [sentence(10, rng) for _ in range(args.repeats + 1)]
            _wait_and_load(url)  # the model load stays out of the warm medians
            http_ms, bare_ms = [], []
            for text in texts[1:]:
                http_ms.append(timed(lambda t=text: post(url, {"text": t})))
                bare_ms.append(timed(lambda t=text: engine_call(t)))
            hit_ms = [timed(lambda: post(url, {"text": texts[1]})) for _ in range(args.repeats)]
            results["warm_http_ms"] = median(http_ms)
            results["warm_engine_ms"] = median(bare_ms)
            results["serving_overhead_ms"] = round(results["warm_http_ms"] - results["warm_engine_ms"], 1)
            results["serving_overhead_ratio"] = round(results["warm_http_ms"] / results["warm_engine_ms"], 2)
            results["cache_hit_ms"] = median(hit_ms)
            results["peak_rss_mib_per_instance"] = round(sum(group.peak_rss_bytes()) / MiB, 1)

        sweep = []
        for n in [int(i) for i in args.instances.split(",")]:
            with start_fleet(n, scratch / f"fleet-{n}", args.out / "logs", cpus, 2, 10) as fleet:
                sweep_args = argparse.Namespace(
                    max_requests=100_000, think=0.0, duration=args.duration, user_classes="UniqueSentences"
                )
                log = run_locust(fleet.url, 2 * n, sweep_args, args.out, f"bench-instances-{n}")
                step = summarize(f"fleet-{n}", 2 * n, log, None)
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
        ("warm 10-word sentence over HTTP, median", f"{r['warm_http_ms']:.1f} ms"),
        ("same text, bare engine call, median", f"{r['warm_engine_ms']:.1f} ms"),
        ("serving overhead", f"{r['serving_overhead_ms']:.1f} ms ({r['serving_overhead_ratio']:.2f}x)"),
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


if __name__ == "__main__":
    raise SystemExit(main())
