"""The load-test tools must keep working: a few seconds of the fleet-vs-baseline run (both
scenarios, goodput under the calibrated deadlines) and of the benchmark, with real processes, real
HAProxy and real synthesis; and the goodput arithmetic on a made-up log. Full runs are documented
commands."""

from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from function.local import REPO
from loadtest.capacity.inputs import from_bench
from loadtest.goodput import deadlines
from loadtest.stats import summarize


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_loadtest(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m loadtest.run ARGS`` from the repository, bounded, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "loadtest.run", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_goodput_counts_refusals_errors_and_late_answers_as_failures(tmp_path: Path) -> None:
    limits = deadlines(
        ["short-5w", "long-150w"],
        {"fleet": {"short-5w": 40.0, "long-150w": 500.0}, "baseline": {"short-5w": 30.0}},
        factor=2,
        floor_ms=50,
    )
    assert limits == {"short-5w": 60.0, "long-150w": 1000.0}  # the fastest architecture's, x 2
    assert deadlines(["short-5w"], {}, 2, 50, fixed_ms=30_000) == {"short-5w": 30_000}
    log = tmp_path / "requests.jsonl"
    records = [
        ("short-5w", 200, True, 59.0),  # good
        ("short-5w", 200, True, 61.0),  # late
        ("short-5w", 503, False, 1.0),  # refused
        ("short-5w", 500, False, 20.0),  # error
        ("long-150w", 200, True, 900.0),  # good
    ]
    log.write_text(
        "".join(
            json.dumps({"t": 100 + 0.5 * i, "name": n, "status": st, "ok": ok, "ms": ms}) + "\n"
            for i, (n, st, ok, ms) in enumerate(records)
        )
    )
    short, long = summarize("fleet", 2, log, None, limits, "isolation")
    assert (short.traffic, short.requests, short.good, short.late, short.refused) == ("short", 4, 1, 1, 1)
    assert short.goodput_share == 0.25 and short.errors == 2 and short.ok == 2  # errors incl. refused
    assert short.p50_ms == 59.0  # latency of the accepted requests only
    assert (long.traffic, long.good, long.goodput_share) == ("long", 1, 1.0)
    assert short.window_s == long.window_s and short.goodput_rps == round(1 / short.window_s, 2)
    (whole,) = summarize("fleet", 2, log, None, limits, "mixed")
    assert (whole.traffic, whole.requests, whole.good) == ("all", 5, 2)


def test_fleet_and_baseline_run_writes_figures_and_stops_everything(tmp_path: Path) -> None:
    assert shutil.which("haproxy"), "haproxy missing: apt-get update && apt-get install -y haproxy"
    out = tmp_path / "run"
    done = run_loadtest(
        "--instances",
        "2",
        "--users",
        "2",
        "--duration",
        "3",
        "--max-requests",
        "40",
        "--scenario",
        "mixed,isolation",
        "--calibration-samples",
        "1",
        "--out",
        str(out),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    steps = {(s["architecture"], s["scenario"], s["traffic"]): s for s in summary["steps"]}
    rows = {
        (scenario, traffic)
        for scenario, traffic in (("mixed", "all"), ("isolation", "short"), ("isolation", "long"))
    }
    assert set(steps) == {(arch, *row) for arch in ("fleet", "baseline") for row in rows}
    # One deadline per kind of request, from the unloaded latency of each architecture.
    limits = summary["deadlines_ms"]
    assert {"unique-10w", "hot-set", "short-5w", "long-150w"} <= set(limits)
    assert set(summary["unloaded_ms"]) == {"fleet", "baseline"}
    fastest = min(summary["unloaded_ms"][arch]["long-150w"] for arch in ("fleet", "baseline"))
    assert limits["long-150w"] == round(max(20, 2 * fastest), 1)
    assert limits["long-150w"] > limits["short-5w"] >= 20
    for step in steps.values():
        assert 0 < step["ok"] <= step["requests"] <= 40
        assert step["good"] + step["late"] == step["ok"]
        assert step["goodput_share"] == round(step["good"] / step["requests"], 4)
        assert step["goodput_rps"] <= step["qps"]
        assert 0 < step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"]
        assert step["qps"] > 0 and step["cpu_s"] > 0
    for arch in ("fleet", "baseline"):  # a 150-word passage takes longer than a five-word prompt
        assert steps[(arch, "isolation", "long")]["p50_ms"] > steps[(arch, "isolation", "short")]["p50_ms"]
    assert {(r["scenario"], r["traffic"], r["users"]) for r in summary["ratios"]} == {
        (*row, 2) for row in rows
    }
    assert "goodput_rps_baseline_over_fleet" in summary["ratios"][0]
    assert summary["peak_rss_mib"]["fleet"] > summary["peak_rss_mib"]["baseline"] > 50
    with (out / "summary.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and "goodput_share" in table[0]
    assert (out / "locust" / "fleet-u2-r0_stats.csv").stat().st_size > 0
    assert (out / "locust" / "baseline-isolation-u2-r0_stats.csv").stat().st_size > 0
    for chart in ("comparison.png", "isolation.png"):
        assert (out / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # fleet: 2 instances (functions-framework + gunicorn worker each) and HAProxy; baseline: 1 process
    assert len(summary["started_pids"]) >= 6
    assert not [pid for pid in summary["started_pids"] if alive(pid)]


def test_sigterm_mid_run_stops_every_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    runner = subprocess.Popen(
        [sys.executable, "-m", "loadtest.run", "--users", "2", "--duration", "60", "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "requests" / "fleet-u2-r0.jsonl").exists():  # Locust is sending traffic
            assert runner.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        children = psutil.Process(runner.pid).children(recursive=True)
        assert len(children) >= 6  # 2 x (functions-framework + worker), HAProxy, Locust
        runner.terminate()
        assert runner.wait(timeout=30) != 0
    finally:
        runner.kill()
    _, still = psutil.wait_procs(children, timeout=10)
    assert not [p.pid for p in still if alive(p.pid)]


def test_benchmark_smoke_prints_and_writes_its_figures(tmp_path: Path) -> None:
    assert shutil.which("haproxy"), "haproxy missing: apt-get update && apt-get install -y haproxy"
    done = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "--smoke", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "serving overhead" in done.stdout
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert len(bench["cold_start_runs_ms"]) == 2
    # Only orderings that hold by far: a few samples on a shared machine rank nothing closer.
    assert bench["cold_start_ms"] > bench["warm_http_ms"] > 0 and bench["warm_engine_ms"] > 0
    assert bench["bare_cold_start_ms"] > bench["warm_engine_ms"] and bench["cold_start_ratio"] > 0
    assert {"load_ms", "synthesis_ms", "upload_ms", "rest_ms"} <= set(bench["cold_start_breakdown_ms"])
    assert "load_ms" not in bench["warm_breakdown_ms"] and bench["warm_breakdown_ms"]["synthesis_ms"] > 0
    assert 0 < bench["cache_hit_ms"] < bench["warm_http_ms"]
    assert bench["peak_rss_mib_per_instance"] > 50
    # The capacity model samples the bench's own output.
    profile = from_bench(tmp_path / "bench.json", "hibari", memory_gib=2)
    assert len(profile.service) == 5 and all(chars > 20 and 0 < s < 5 for chars, s in profile.service)
    assert len(profile.cold_start_s) == 2 and profile.vcpu == bench["engine_threads"] == 1
    sweep = bench["throughput_by_instances"]
    assert [s["instances"] for s in sweep] == [1, 2]
    assert all(s["qps"] > 0 for s in sweep)


def test_bounded_thread_pool_refuses_when_its_queue_is_full(tmp_path: Path) -> None:
    """The bounded-pool baseline: one worker, one waiting place. While a long passage holds the
    worker, a second request waits and a third is refused at once with the fleet's 503 +
    Retry-After; the waiting one is synthesized after."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from loadtest.deployments import start_baseline
    from loadtest.texts import paragraph

    rng = random.Random(7)
    with start_baseline(1, tmp_path / "audio", tmp_path / "logs", None, 1, max_queue=1) as pool:
        assert pool.name == "bounded-pool"

        def post(words: int) -> requests.Response:
            return requests.post(f"{pool.url}/synthesize", json={"text": paragraph(words, rng)}, timeout=60)

        with ThreadPoolExecutor(3) as senders:
            long = senders.submit(post, 500)  # ~1 s of synthesis
            time.sleep(0.3)
            waiting = senders.submit(post, 10)
            time.sleep(0.1)
            refused = post(10)
            assert not long.done()  # the refusal came while the worker was busy
            answers = [long.result(), waiting.result()]
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1" and refused.json()["error"]["code"] == "overloaded"
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json()["duration_s"] > 60 and answers[1].json()["duration_s"] > 1  # speech
