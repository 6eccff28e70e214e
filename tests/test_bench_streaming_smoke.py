"""loadtest.bench_streaming runs end to end (one trial, hibari, a short text): the tool, not the numbers."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest import bench_streaming


def test_bench_streaming_measures_both_modes(tmp_path: Path) -> None:
    out = tmp_path / "bench_streaming.json"
    bench_streaming.main(["--engines", "hibari", "--trials", "1", "--sentences", "3", "--out", str(out)])
    report = json.loads(out.read_text())
    [hibari] = report["engines"]
    median = hibari["median"]
    assert hibari["engine"] == "hibari" and len(hibari["runs"]) == 1
    assert 0 < median["streamed_first_byte_ms"] < median["streamed_total_ms"]
    assert 0 < median["whole_first_byte_ms"] <= median["whole_total_ms"]
    assert median["first_sentence_synthesis_ms"] > 0 and isinstance(median["goal_met"], bool)
    assert len(report["machine"]["load_average_start"]) == 3
