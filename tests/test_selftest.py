"""The image build's model check passes on a good model and fails on a broken one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_selftest(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "function.selftest"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        cwd=Path(__file__).parent.parent,
    )


def test_selftest_speaks_with_the_default_voice() -> None:
    result = run_selftest()
    assert result.returncode == 0, result.stderr
    assert "engine=hibari" in result.stdout and "rate=24000" in result.stdout


def test_selftest_fails_on_a_broken_model(tmp_path: Path) -> None:
    (tmp_path / "bf_emma.int8.onnx").write_bytes(b"garbage")
    result = run_selftest(HIBARI_HOME=str(tmp_path))
    assert result.returncode != 0
    assert "failed to load" in result.stdout + result.stderr
