"""Another revision of this repository, checked out beside it for a benchmark's baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def worktree(ref: str, path: Path) -> Iterator[Path]:
    """Git ``ref`` checked out (detached) at ``path`` for the duration; removed again however the
    benchmark ends."""
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "--detach", str(path), ref], check=True)
    try:
        yield path
    finally:
        subprocess.run([*git, "remove", "--force", str(path)], check=True)


def run_in(tree: Path, script: str, *args: str) -> Any:
    """Run the Python ``script`` in a fresh process on ``tree``'s code (its ``function`` package
    first on the path); the JSON its last line of output prints."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=tempfile.gettempdir(), env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])
