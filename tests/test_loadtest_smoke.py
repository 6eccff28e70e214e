"""The load-test tools must keep working: a few seconds of the fleet-vs-baseline run and of the
benchmark, with real processes, real HAProxy and real synthesis. Full runs are documented commands."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import psutil

from tests.conftest import REPO


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
    with (out / "summary.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (out / "locust" / "fleet-u2_stats.csv").stat().st_size > 0
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # fleet: 2 instances (functions-framework + gunicorn worker each) and HAProxy; baseline: 1 process
    assert len(summary["started_pids"]) >= 6
    assert not [pid for pid in summary["started_pids"] if alive(pid)]
