"""The load-test tools must keep working: a few seconds of the fleet-vs-baseline run and of the
benchmark, with real processes, real HAProxy and real synthesis. Full runs are documented commands."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from function.local import REPO


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_fleet_and_baseline_run_writes_figures_and_stops_everything(tmp_path: Path) -> None:
    assert shutil.which("haproxy"), "haproxy missing: apt-get update && apt-get install -y haproxy"
    out = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.run",
            "--instances",
            "2",
            "--users",
            "2",
            "--duration",
            "3",
            "--max-requests",
            "40",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    steps = {s["architecture"]: s for s in summary["steps"]}
    assert set(steps) == {"fleet", "baseline"}
    for step in steps.values():
        assert 0 < step["ok"] <= step["requests"] <= 40
        assert 0 < step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"]
        assert step["qps"] > 0 and step["cpu_s"] > 0
    assert summary["ratios"][0]["users"] == 2
    assert summary["peak_rss_mib"]["fleet"] > summary["peak_rss_mib"]["baseline"] > 50
    with (out / "summary.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (out / "locust" / "fleet-u2-r0_stats.csv").stat().st_size > 0
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
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
    sweep = bench["throughput_by_instances"]
    assert [s["instances"] for s in sweep] == [1, 2]
    assert all(s["qps"] > 0 for s in sweep)
