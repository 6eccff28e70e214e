"""The CosyVoice benchmark must keep working: its whole plan on the tiny model, in real subprocesses
with upstream as the baseline. The full-size run is a documented command (README, CosyVoice engine)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from function.local import REPO


def test_bench_smoke_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest.bench_cosyvoice",
            "--smoke",
            "--threads",
            "1",
            "--model-dir",
            str(tmp_path / "model"),
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "faster than upstream" in done.stdout
    report = json.loads(out.read_text())
    assert set(report["ready_s"]) == {
        "lite .pt",
        "lite safetensors",
        "lite int8 safetensors",
        "lite fast safetensors",
        "upstream .pt",
    }
    assert all(0 < seconds < 120 for seconds in report["ready_s"].values())
    rows = {row["runtime"]: row for row in report["synthesis"]}
    assert set(rows) == {"lite", "upstream", "lite-bf16", "lite-int8", "lite-fast"}
    for row in rows.values():
        assert row["tokens"] == 8
        assert len(row["wall_s"]) == len(row["llm_s"]) == len(row["flow_s"]) == len(row["hift_s"]) == 2
        assert all(0 < llm <= wall for llm, wall in zip(row["llm_s"], row["wall_s"], strict=True))
        assert row["peak_rss_mb"] > 100
    # Both runtimes did the same work: the same number of tokens, so the same audio length.
    assert rows["lite"]["audio_s"] == rows["upstream"]["audio_s"] > 0
    for precision in ("bf16", "int8"):
        diff = report["modes"][precision]
        assert math.isfinite(diff["max_abs_logp_diff"]) and diff["max_abs_logp_diff"] > 0
        assert 0 <= diff["top1_agreement"] <= 1
    floors = report["floors"]
    assert floors["llm_bytes_per_token"] > 0 and floors["matvec_gbs"] > 0 and floors["read_gbs"] > 0
    assert floors["gemm_gflops"]["float32"] > 0 and floors["flow_gflop"] > 0 and floors["hift_gflop"] > 0
